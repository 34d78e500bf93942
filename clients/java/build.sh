#!/bin/sh
# build.sh: generates the helloworld code from proto/ with protoc and Debian's grpc-java
# plugin, compiles Greeter.java against Debian's jars, and writes the launcher.
#
#   clients/java/build.sh [BUILD_DIR]     (default: clients/java/build, git-ignored)
#
# Build packages: protobuf-compiler, libprotobuf-dev (google/protobuf/duration.proto),
# protobuf-compiler-grpc-java-plugin, default-jdk-headless,
# libgeronimo-annotation-1.3-spec-java (javax.annotation.Generated), and the runtime jars.
# Nothing generated is committed.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
proto_root=$(cd "$here/../../proto" && pwd)
build=${1:-$here/build}
jars=${JAVA_JARS:-/usr/share/java}
plugin=${GRPC_JAVA_PLUGIN:-/usr/bin/grpc_java_plugin}

# The runtime classpath, every jar from a Debian package (see README.md):
#   libgrpc-java        grpc-api grpc-context grpc-core grpc-netty grpc-protobuf
#                       grpc-protobuf-lite grpc-stub
#   libprotobuf-java    protobuf (protobuf-java 3.21)
#   libguava-java       guava (31.1, with failureaccess inside)
#   libperfmark-java    perfmark-api
#   libgoogle-gson-java gson (grpc-core's JSON parser)
#   libnetty-java       netty-* 4.1.48 (NIO transport; Debian's epoll jar has no native
#                       library, so it is left out)
CLASSPATH_JARS="grpc-api grpc-context grpc-core grpc-netty grpc-protobuf grpc-protobuf-lite grpc-stub
protobuf guava perfmark-api gson
netty-common netty-buffer netty-resolver netty-transport netty-codec netty-codec-http
netty-codec-http2 netty-handler netty-codec-socks netty-handler-proxy"

cp=""
missing=""
for j in $CLASSPATH_JARS; do
	if [ -f "$jars/$j.jar" ]; then
		cp="${cp:+$cp:}$jars/$j.jar"
	else
		missing="$missing $j.jar"
	fi
done
if [ -n "$missing" ]; then
	echo "build.sh: missing in $jars:$missing (install the Debian packages listed in clients/java/README.md)" >&2
	exit 1
fi
[ -x "$plugin" ] || { echo "build.sh: no $plugin (apt-get install protobuf-compiler-grpc-java-plugin)" >&2; exit 1; }

rm -rf "$build/gen" "$build/classes" "$build/native"
mkdir -p "$build/gen" "$build/classes"

# Well-known types (duration.proto) come from libprotobuf-dev's /usr/include.
protoc -I"$proto_root" -I/usr/include \
	--plugin=protoc-gen-grpc-java="$plugin" \
	--java_out="$build/gen" --grpc-java_out="$build/gen" \
	"$proto_root/helloworld/helloworld.proto"

# The 1.41 plugin always writes @javax.annotation.Generated, which JDK 11+ no longer has
# (and it has no @generated=omit option): javac finds it in libgeronimo-annotation-1.3-
# spec-java's jar, at compile time only (the annotation is not kept in class files).
annotations=$jars/geronimo-annotation-1.3-spec.jar
[ -f "$annotations" ] || { echo "build.sh: no $annotations (apt-get install libgeronimo-annotation-1.3-spec-java)" >&2; exit 1; }
# Warnings go to javac.log: sun.misc.Signal is used on purpose (SIGTERM/SIGINT handling
# that lets the JVM exit 0 after the report).
javac -encoding UTF-8 -cp "$cp:$annotations" -d "$build/classes" \
	$(find "$build/gen" -name '*.java') "$here/Greeter.java" 2>"$build/javac.log" || { cat "$build/javac.log" >&2; exit 1; }

# TLS (--tls) needs OpenSSL through netty-tcnative: Debian's netty 4.1.48 has no JDK ALPN
# classes (JdkAlpnApplicationProtocolNegotiator), so GrpcSslContexts' JDK provider fails
# with "JDK provider does not support ALPN protocol". libnetty-tcnative-jni installs the
# library as libnetty-tcnative.so, but netty loads "netty_tcnative" and the library checks
# its own file name when loaded (a symlink is resolved and rejected): so it is copied into
# the build under the name netty expects. Without the two packages only plaintext works.
tcnative_so=$(ls /usr/lib/*/jni/libnetty-tcnative.so 2>/dev/null | head -n 1 || true)
native_opt=""
if [ -n "$tcnative_so" ] && [ -f "$jars/netty-tcnative.jar" ]; then
	mkdir -p "$build/native"
	cp "$tcnative_so" "$build/native/libnetty_tcnative.so"
	cp="$cp:$jars/netty-tcnative.jar"
	native_opt="-Djava.library.path=$build/native"
else
	echo "build.sh: no netty-tcnative (libnetty-tcnative-java, libnetty-tcnative-jni): --tls will not work" >&2
fi

# The launcher: JAVA_OPTS passes JVM options (e.g. -Djdk.net.hosts.file=FILE in tests).
# -XX:-UsePerfData: no hsperfdata file in /tmp, which is read-only in the kit's Jobs.
# -XX:TieredStopAtLevel=1: the quick C1 compiler only; a load client gains little from C2
# and its compiles take CPU from the calls while the JVM warms up.
cat >"$build/greeter-java" <<LAUNCH
#!/bin/sh
exec java \${JAVA_OPTS:-} -XX:+UseSerialGC -XX:-UsePerfData -XX:TieredStopAtLevel=1 $native_opt -cp "$build/classes:$cp" Greeter "\$@"
LAUNCH
chmod +x "$build/greeter-java"
echo "$build/greeter-java"
