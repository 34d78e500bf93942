// Greeter is the kit's Java client of proto/helloworld (grpc-java from Debian's
// libgrpc-java, Netty transport): it calls helloworld.Hello/SayHello one call at a time,
// paced from the start, and prints the report of clients/README.md. Built by build.sh.
//
// Flags are --name=value only (clients/README.md). Progress goes to stderr once a second,
// the report to stdout at the end. SIGTERM or SIGINT stops the calls, the one in flight
// finishes, the report is printed and the exit code is 0. Bad flags: exit 2. A client that
// cannot run (an unreadable CA file, a target grpc-java cannot parse): exit 1.

import helloworld.HelloGrpc;
import helloworld.Helloworld.Backend;
import helloworld.Helloworld.SayHelloRequest;
import helloworld.Helloworld.SayHelloResponse;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.GrpcSslContexts;
import io.grpc.netty.NettyChannelBuilder;
import java.io.File;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.security.Security;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;

public final class Greeter {
  static final String PROG = "greeter-java";
  static final String METHOD = "helloworld.Hello/SayHello";
  static final String SERVICE = "helloworld.Hello";

  /** Bad flags: a message on stderr and exit code 2. */
  static final class BadFlag extends Exception {
    BadFlag(String msg) {
      super(msg);
    }
  }

  /** The flags of clients/README.md, with their defaults. */
  static final class Options {
    String target = "";
    long calls = 300;
    double durationS = 0;
    double rate = 100;
    String policy = "round_robin";
    boolean retries = true;
    boolean health = true;
    double keepaliveS = 0;
    double dnsMinResolveS = 0;
    double deadlineS = 2;
    boolean tls = false;
    String ca = "";
    String authority = "";
    String name = "polyglot";
  }

  static final String USAGE =
      "usage: greeter-java --target=URI [--calls=300] [--duration=0] [--rate=100]\n"
          + "  [--policy=round_robin|pick_first|default] [--retries=true] [--health=true]\n"
          + "  [--keepalive=0] [--dns-min-resolve=0] [--deadline=2] [--tls=false] [--ca=FILE]\n"
          + "  [--authority=NAME]\n"
          + "  [--name=polyglot]\n"
          + "JVM options go in JAVA_OPTS (e.g. -Dnetworkaddress.cache.ttl=30, -Djdk.net.hosts.file=FILE).";

  public static void main(String[] args) {
    Options o;
    try {
      o = parse(args);
    } catch (BadFlag e) {
      System.err.println(PROG + ": " + e.getMessage());
      System.exit(2);
      return;
    }
    if (o == null) { // --help
      System.err.println(USAGE);
      System.exit(0);
      return;
    }
    int code;
    try {
      code = run(o);
    } catch (IllegalStateException | IllegalArgumentException e) {
      // The client cannot run: an unreadable --ca, a target grpc-java cannot parse, ...
      System.err.println(PROG + ": " + e.getMessage());
      code = 1;
    } catch (Exception e) {
      System.err.println(PROG + ": " + e);
      code = 1;
    }
    System.exit(code);
  }

  // ---- flags ----------------------------------------------------------------------------

  static Options parse(String[] args) throws BadFlag {
    Options o = new Options();
    boolean caSet = false;
    boolean authoritySet = false;
    for (String a : args) {
      if (a.equals("--help") || a.equals("-h") || a.equals("-help")) {
        return null;
      }
      if (!a.startsWith("--") || a.indexOf('=') < 0) {
        throw new BadFlag("bad argument " + quote(a) + ": flags are --name=value\n" + USAGE);
      }
      String k = a.substring(2, a.indexOf('='));
      String v = a.substring(a.indexOf('=') + 1);
      switch (k) {
        case "target":
          o.target = v;
          break;
        case "calls":
          o.calls = parseLong(k, v);
          if (o.calls < 1) throw new BadFlag("--calls must be at least 1, not " + v);
          break;
        case "duration":
          o.durationS = parseNonNegative(k, v);
          break;
        case "rate":
          o.rate = parseNonNegative(k, v);
          break;
        case "policy":
          if (!v.equals("round_robin") && !v.equals("pick_first") && !v.equals("default")) {
            throw new BadFlag("--policy must be round_robin, pick_first or default, not " + quote(v));
          }
          o.policy = v;
          break;
        case "retries":
          o.retries = parseBool(k, v);
          break;
        case "health":
          o.health = parseBool(k, v);
          break;
        case "keepalive":
          o.keepaliveS = parseNonNegative(k, v);
          break;
        case "dns-min-resolve":
          o.dnsMinResolveS = parseNonNegative(k, v);
          break;
        case "deadline":
          o.deadlineS = parseNonNegative(k, v);
          if (o.deadlineS == 0) throw new BadFlag("--deadline must be more than 0 seconds");
          break;
        case "tls":
          o.tls = parseBool(k, v);
          break;
        case "ca":
          o.ca = v;
          caSet = true;
          break;
        case "authority":
          o.authority = v;
          authoritySet = true;
          break;
        case "name":
          o.name = v;
          break;
        default:
          throw new BadFlag("unknown flag --" + k + "\n" + USAGE);
      }
    }
    if (o.target.isEmpty()) throw new BadFlag("--target is required\n" + USAGE);
    if (caSet && !o.tls) throw new BadFlag("--ca needs --tls=true");
    if (authoritySet && o.authority.isEmpty()) throw new BadFlag("--authority is empty");
    return o;
  }

  static long parseLong(String k, String v) throws BadFlag {
    try {
      return Long.parseLong(v);
    } catch (NumberFormatException e) {
      throw new BadFlag("--" + k + ": not an integer: " + quote(v));
    }
  }

  static double parseNonNegative(String k, String v) throws BadFlag {
    double d;
    try {
      d = Double.parseDouble(v);
    } catch (NumberFormatException e) {
      throw new BadFlag("--" + k + ": not a number: " + quote(v));
    }
    if (Double.isNaN(d) || Double.isInfinite(d) || d < 0 || v.endsWith("d") || v.endsWith("f")
        || v.endsWith("D") || v.endsWith("F")) {
      throw new BadFlag("--" + k + ": not a number of 0 or more: " + quote(v));
    }
    return d;
  }

  static boolean parseBool(String k, String v) throws BadFlag {
    switch (v.toLowerCase(Locale.ROOT)) {
      case "true":
      case "1":
        return true;
      case "false":
      case "0":
        return false;
      default:
        throw new BadFlag("--" + k + ": not true or false: " + quote(v));
    }
  }

  // ---- the channel ----------------------------------------------------------------------

  /**
   * The greeter's service config (greeter -print-service-config) as the Map that
   * ManagedChannelBuilder.defaultServiceConfig takes: JSON objects as Map<String, ?>, arrays
   * as List<?>, numbers as Double (grpc-java's JsonUtil reads numbers only as Double).
   */
  static Map<String, Object> serviceConfig(Options o) {
    Map<String, Object> sc = new LinkedHashMap<>();
    if (!o.policy.equals("default")) {
      // loadBalancingConfig: round_robin (grpc-core's io.grpc.util round_robin provider)
      // opens a subchannel to every address the resolver returns and spreads calls over
      // the READY ones; pick_first sends everything to one address.
      sc.put("loadBalancingConfig", List.of(Map.of(o.policy, Map.of())));
    }
    if (o.health) {
      // healthCheckConfig is read only by grpc-services' health-checking round_robin
      // (io.grpc.protobuf.services.internal.HealthCheckingRoundRobinLoadBalancerProvider).
      // Debian's libgrpc-java ships no grpc-services jar: without it grpc-java ignores this
      // key, and the report says "health": false. It is still set, so the config is the
      // greeter's and a classpath with grpc-services turns health checking on unchanged.
      sc.put("healthCheckConfig", Map.of("serviceName", SERVICE));
    }
    if (o.retries) {
      // retryPolicy: SayHello is idempotent; a call that fails UNAVAILABLE (a pod that went
      // away, a GOAWAY) or UNKNOWN is retried up to 5 attempts, on another pod when the
      // policy is round_robin. Needs retries enabled on the channel (enableRetry below).
      Map<String, Object> retry = new LinkedHashMap<>();
      retry.put("maxAttempts", 5.0);
      retry.put("initialBackoff", "0.1s");
      retry.put("maxBackoff", "1s");
      retry.put("backoffMultiplier", 2.0);
      retry.put("retryableStatusCodes", List.of("UNAVAILABLE", "UNKNOWN"));
      Map<String, Object> mc = new LinkedHashMap<>();
      mc.put("name", List.of(Map.of("service", SERVICE), Map.of("service", "helloworld.Goodbye")));
      mc.put("retryPolicy", retry);
      sc.put("methodConfig", List.of(mc));
    }
    return sc;
  }

  /** Whether grpc-services' health-checking round_robin is on the classpath. */
  static boolean healthCheckingAvailable() {
    for (String c :
        new String[] {
          "io.grpc.protobuf.services.internal.HealthCheckingRoundRobinLoadBalancerProvider",
          "io.grpc.services.internal.HealthCheckingRoundRobinLoadBalancerProvider"
        }) {
      try {
        Class.forName(c, false, Greeter.class.getClassLoader());
        return true;
      } catch (ClassNotFoundException e) {
        // not shipped by Debian
      }
    }
    return false;
  }

  static ManagedChannel channel(Options o) throws Exception {
    // forTarget takes the target URI as is: dns:///host:port goes to grpc-core's
    // DnsNameResolver, which resolves with the JDK (InetAddress.getAllByName), so every A
    // record of a headless Service becomes an address for the policy to balance over.
    // grpc-java 1.41 has no ipv4:/ipv6: multi-address scheme.
    NettyChannelBuilder b = NettyChannelBuilder.forTarget(o.target);

    if (o.tls) {
      // TLS through OpenSSL (netty-tcnative, which build.sh puts on the classpath and the
      // library path when Debian's libnetty-tcnative-java/-jni are installed). The JDK's
      // own TLS would do ALPN on JDK 9+, but Debian's netty 4.1.48 is built without its JDK
      // ALPN classes, so GrpcSslContexts' JDK provider fails ("JDK provider does not
      // support ALPN protocol"). --ca: the PEM roots to trust instead of the default ones.
      if (!io.netty.handler.ssl.OpenSsl.isAvailable()) {
        throw new IllegalStateException(
            "--tls needs netty-tcnative (Debian's libnetty-tcnative-java and"
                + " libnetty-tcnative-jni, then build.sh again): Debian's netty has no JDK ALPN");
      }
      io.netty.handler.ssl.SslContextBuilder ssl = GrpcSslContexts.forClient();
      if (!o.ca.isEmpty()) {
        File ca = new File(o.ca);
        if (!ca.canRead()) throw new IllegalStateException("cannot read --ca file " + o.ca);
        ssl.trustManager(ca);
      }
      b.sslContext(ssl.build());
    } else {
      b.usePlaintext();
    }
    if (!o.authority.isEmpty()) {
      // :authority of every call, and with TLS the name the server certificate must carry.
      b.overrideAuthority(o.authority);
    }

    // The service config is the default one, used as long as the resolver supplies none,
    // and DNS TXT service configs are not looked up (grpc-java does not by default either),
    // so the config in force is always exactly this one.
    Map<String, Object> sc = serviceConfig(o);
    if (!sc.isEmpty()) b.defaultServiceConfig(sc);
    b.disableServiceConfigLookUp();

    if (o.retries) {
      // Retries per the retryPolicy above. enableRetry() is the switch for configured
      // retries (and hedging); without --retries no retryPolicy is set, and grpc-java only
      // makes its transparent retries (a call that never left the client), as every stack.
      b.enableRetry();
    }

    if (o.keepaliveS > 0) {
      // HTTP/2 PING every --keepalive seconds while calls are open (keepAliveWithoutCalls
      // stays false, as in grpc-go's greeter): dead connections to vanished pods are found
      // in keepalive + 10s. The kit's servers accept pings every 10s or more; grpc-java
      // also raises anything under 10s to 10s.
      b.keepAliveTime((long) Math.ceil(o.keepaliveS * 1000), TimeUnit.MILLISECONDS);
      b.keepAliveTimeout(10, TimeUnit.SECONDS);
    }
    return b.build();
  }

  // ---- the run --------------------------------------------------------------------------

  static final class PodCount {
    final String pod;
    final String node;
    long calls;
    final double firstUnix;

    PodCount(String pod, String node, double firstUnix) {
      this.pod = pod;
      this.node = node;
      this.firstUnix = firstUnix;
    }
  }

  static final class ErrCount {
    long count;
    final String example;

    ErrCount(String example) {
      this.example = example;
    }
  }

  static volatile boolean stop = false;

  static int run(Options o) throws Exception {
    // DNS re-resolution. grpc-java re-resolves when a connection goes away (a GOAWAY from
    // the servers' MAX_CONNECTION_AGE, a pod that died), at most once per
    // networkaddress.cache.ttl seconds read as a *system* property (default 30s, as grpc-go
    // and C-core's minimum time between resolutions). Under it, the JDK caches names per
    // the *security* property networkaddress.cache.ttl (30s by default without a security
    // manager): left as it is, a re-resolution could see a 30s-old answer, so the JDK's
    // cache is cut to 5s unless JAVA_OPTS set it (-Dsun.net.inetaddr.ttl=...).
    if (System.getProperty("sun.net.inetaddr.ttl") == null) {
      Security.setProperty("networkaddress.cache.ttl", "5");
    }
    if (o.dnsMinResolveS > 0) {
      // --dns-min-resolve: grpc-java's own interval (a re-resolution requested inside it is
      // dropped, not postponed, so a client can take two connection ages to see new pods),
      // and the JDK's cache no longer than it.
      String secs = Long.toString((long) Math.ceil(o.dnsMinResolveS));
      System.setProperty("networkaddress.cache.ttl", secs);
      if (Math.ceil(o.dnsMinResolveS) < 5) Security.setProperty("networkaddress.cache.ttl", secs);
    }

    final Thread main = Thread.currentThread();
    installSignalHandlers(main);

    ManagedChannel ch = channel(o);
    HelloGrpc.HelloBlockingStub stub = HelloGrpc.newBlockingStub(ch);
    SayHelloRequest req = SayHelloRequest.newBuilder().setName(o.name).build();

    Map<String, PodCount> pods = new TreeMap<>();
    Map<String, Long> byVersion = new TreeMap<>();
    Map<String, ErrCount> errors = new LinkedHashMap<>();
    AtomicLong done = new AtomicLong();
    AtomicLong failed = new AtomicLong();

    final long start = System.nanoTime();
    final long durNanos = (long) (o.durationS * 1e9);
    final PrintStream err = System.err;

    ScheduledExecutorService ticker =
        Executors.newSingleThreadScheduledExecutor(
            r -> {
              Thread t = new Thread(r, "progress");
              t.setDaemon(true);
              return t;
            });
    ticker.scheduleAtFixedRate(
        () -> {
          double el = (System.nanoTime() - start) / 1e9;
          StringBuilder s = new StringBuilder("{\"progress\":{");
          s.append("\"calls\":").append(done.get());
          s.append(",\"failed\":").append(failed.get());
          s.append(",\"elapsed_s\":").append(num(el, 1));
          if (o.durationS > 0) s.append(",\"duration_s\":").append(num(o.durationS, 3));
          else s.append(",\"planned_calls\":").append(o.calls);
          s.append("}}");
          synchronized (err) {
            err.println(s);
          }
        },
        1,
        1,
        TimeUnit.SECONDS);

    for (long i = 0; !stop; i++) {
      if (o.durationS == 0 && i >= o.calls) break;
      // Pacing: call i starts at start + i/rate; one call at a time, so a slow call delays
      // the next ones rather than overlapping them.
      long due = o.rate > 0 ? start + (long) (i * 1e9 / o.rate) : System.nanoTime();
      if (o.durationS > 0 && due - start >= durNanos) break;
      for (long w; !stop && (w = due - System.nanoTime()) > 0; ) LockSupport.parkNanos(w);
      if (stop) break;
      if (o.durationS > 0 && System.nanoTime() - start >= durNanos) break;
      try {
        // The deadline is per call: a retried call's attempts all share it.
        SayHelloResponse r =
            stub.withDeadlineAfter((long) (o.deadlineS * 1e9), TimeUnit.NANOSECONDS).sayHello(req);
        double now = System.currentTimeMillis() / 1000.0;
        Backend b = r.getBackend();
        pods.computeIfAbsent(b.getPod(), p -> new PodCount(p, b.getNode(), now)).calls++;
        byVersion.merge(b.getVersion(), 1L, Long::sum);
      } catch (StatusRuntimeException e) {
        Status s = e.getStatus();
        // The example: the status message's first line (Netty appends the channel
        // pipeline), with the cause's when there is one ("io exception" alone says little).
        String msg = s.getDescription() == null ? "" : s.getDescription().split("\n", 2)[0];
        Throwable cause = s.getCause();
        while (cause != null && cause.getCause() != null) cause = cause.getCause();
        if (cause != null && cause.getMessage() != null) {
          msg = msg.isEmpty() ? cause.getMessage() : msg + ": " + cause.getMessage();
        }
        final String example = msg;
        // Status.Code.name(): UNAVAILABLE, DEADLINE_EXCEEDED, ...
        errors.computeIfAbsent(s.getCode().name(), c -> new ErrCount(example)).count++;
        failed.incrementAndGet();
      }
      done.incrementAndGet();
    }
    double elapsed = (System.nanoTime() - start) / 1e9;
    ticker.shutdownNow();

    long calls = done.get();
    long nFailed = failed.get();
    long ok = calls - nFailed;
    boolean healthOn = o.health && o.policy.equals("round_robin") && healthCheckingAvailable();

    StringBuilder j = new StringBuilder(512);
    j.append('{');
    j.append("\"target\":").append(str(o.target));
    j.append(",\"method\":").append(str(METHOD));
    j.append(",\"lb\":").append(str(o.policy.equals("default") ? "pick_first" : o.policy));
    j.append(",\"calls\":").append(calls);
    j.append(",\"ok\":").append(ok);
    j.append(",\"failed\":").append(nFailed);
    j.append(",\"elapsed_s\":").append(num(elapsed, 3));
    j.append(",\"per_second\":").append(num(elapsed > 0 ? calls / elapsed : 0, 1));
    j.append(",\"backends\":[");
    boolean first = true;
    for (PodCount p : pods.values()) {
      if (!first) j.append(',');
      first = false;
      j.append("{\"pod\":").append(str(p.pod));
      if (!p.node.isEmpty()) j.append(",\"node\":").append(str(p.node));
      j.append(",\"calls\":").append(p.calls);
      j.append(",\"share\":").append(num(ok > 0 ? (double) p.calls / ok : 0, 4));
      j.append(",\"first_unix\":").append(num(p.firstUnix, 3));
      j.append('}');
    }
    j.append("],\"by_version\":{");
    first = true;
    for (Map.Entry<String, Long> e : byVersion.entrySet()) {
      if (!first) j.append(',');
      first = false;
      j.append(str(e.getKey())).append(':').append(e.getValue());
    }
    j.append("},\"errors\":[");
    List<Map.Entry<String, ErrCount>> errs = new ArrayList<>(errors.entrySet());
    errs.sort(Comparator.comparingLong((Map.Entry<String, ErrCount> e) -> -e.getValue().count));
    first = true;
    for (Map.Entry<String, ErrCount> e : errs) {
      if (!first) j.append(',');
      first = false;
      j.append("{\"code\":").append(str(e.getKey()));
      j.append(",\"count\":").append(e.getValue().count);
      j.append(",\"example\":").append(str(e.getValue().example)).append('}');
    }
    j.append("],\"client\":{");
    j.append("\"language\":\"java\"");
    j.append(",\"grpc\":").append(str(grpcVersion()));
    j.append(",\"policy\":").append(str(o.policy));
    j.append(",\"retries\":").append(o.retries);
    j.append(",\"health\":").append(healthOn);
    j.append(",\"keepalive_s\":").append(num(o.keepaliveS, 3));
    j.append(",\"dns_min_resolve_s\":").append(num(o.dnsMinResolveS, 3));
    j.append("}}");

    PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
    out.println(j);
    out.flush();

    ch.shutdownNow();
    ch.awaitTermination(2, TimeUnit.SECONDS);
    return 0;
  }

  /** grpc-java's version, from grpc-api's jar manifest (1.41.3 from Debian). */
  static String grpcVersion() {
    Package p = ManagedChannelBuilder.class.getPackage();
    String v = p == null ? null : p.getImplementationVersion();
    return v == null ? "unknown" : v;
  }

  /**
   * SIGTERM and SIGINT set stop and wake the pacing wait; the call in flight finishes, the
   * report is printed and main exits 0. A JVM shutdown hook would not do: the JVM is already
   * exiting (with 143 or 130) when hooks run. sun.misc.Signal is in the jdk.unsupported
   * module, which every JDK exports.
   */
  @SuppressWarnings("removal")
  static void installSignalHandlers(Thread main) {
    sun.misc.SignalHandler h =
        sig -> {
          stop = true;
          LockSupport.unpark(main);
        };
    sun.misc.Signal.handle(new sun.misc.Signal("TERM"), h);
    sun.misc.Signal.handle(new sun.misc.Signal("INT"), h);
  }

  // ---- JSON -----------------------------------------------------------------------------

  static String num(double d, int decimals) {
    if (Double.isNaN(d) || Double.isInfinite(d)) return "0";
    String s = String.format(Locale.ROOT, "%." + decimals + "f", d);
    if (s.indexOf('.') >= 0) {
      s = s.replaceAll("0+$", "");
      if (s.endsWith(".")) s = s.substring(0, s.length() - 1);
    }
    return s.equals("-0") ? "0" : s;
  }

  static String str(String s) {
    StringBuilder b = new StringBuilder(s.length() + 2).append('"');
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      switch (c) {
        case '"':
          b.append("\\\"");
          break;
        case '\\':
          b.append("\\\\");
          break;
        case '\n':
          b.append("\\n");
          break;
        case '\r':
          b.append("\\r");
          break;
        case '\t':
          b.append("\\t");
          break;
        default:
          if (c < 0x20 || c == 0x2028 || c == 0x2029) b.append(String.format("\\u%04x", (int) c));
          else b.append(c);
      }
    }
    return b.append('"').toString();
  }

  static String quote(String s) {
    return str(s);
  }
}
