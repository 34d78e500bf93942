// Package envflag gives every flag of a flag.FlagSet an environment-variable equivalent,
// as container users expect: --http-port is also HTTP_PORT. A flag given on the command
// line wins over the environment, which wins over the default.
package envflag

import (
	"flag"
	"fmt"
	"strings"
)

// EnvName is the environment variable for a flag: prefix + upper case, '-' and '.' as '_'.
func EnvName(prefix, flagName string) string {
	r := strings.NewReplacer("-", "_", ".", "_")
	return prefix + strings.ToUpper(r.Replace(flagName))
}

// AnnotateUsage appends "(env NAME)" to every flag's usage text, so -h documents both.
// Call it after defining the flags and before Parse.
func AnnotateUsage(fs *flag.FlagSet, prefix string) {
	fs.VisitAll(func(f *flag.Flag) {
		f.Usage = fmt.Sprintf("%s (env %s)", f.Usage, EnvName(prefix, f.Name))
	})
}

// Parse parses args, then fills every flag not set on the command line from its
// environment variable, if that is set and not empty. An environment value that does
// not parse is an error naming the variable, never silently ignored.
func Parse(fs *flag.FlagSet, args []string, prefix string, getenv func(string) string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []string
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] {
			return
		}
		name := EnvName(prefix, f.Name)
		v := getenv(name)
		if v == "" {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, fmt.Sprintf("environment %s=%q: %v", name, v, err))
		}
	})
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}
