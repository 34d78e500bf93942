package doctor

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Severity of a finding, from fine to broken.
type Severity int

// Severities. Only Error makes the doctor exit non-zero.
const (
	OK Severity = iota
	Info
	Warning
	Error
)

var severityNames = [...]string{"ok", "info", "warning", "error"}

func (s Severity) String() string {
	if s < OK || s > Error {
		return fmt.Sprintf("severity(%d)", int(s))
	}
	return severityNames[s]
}

// MarshalText writes the severity's name, so -json says "error", not 3.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a severity name (tests and tools read -json output back).
func (s *Severity) UnmarshalText(b []byte) error {
	for i, n := range severityNames {
		if n == string(b) {
			*s = Severity(i)
			return nil
		}
	}
	return fmt.Errorf("unknown severity %q", b)
}

// Checks, in the order they run. Each finding names one.
const (
	CheckService       = "service"
	CheckSelector      = "selector"
	CheckBalancing     = "balancing"
	CheckRoute         = "route"   // GRPCRoutes that send calls to the Service: references, parent status
	CheckGateway       = "gateway" // the Gateways of those routes: class, listeners, TLS Secrets
	CheckIngress       = "ingress" // Ingresses that send calls to the Service: class, gRPC to the pods, ports, TLS Secrets
	CheckPorts         = "ports"
	CheckAppProtocol   = "appProtocol"
	CheckReadiness     = "readiness"
	CheckEndpoints     = "endpoints"
	CheckTLS           = "tls"
	CheckGRPC          = "grpc"
	CheckHealth        = "health"
	CheckReflection    = "reflection"
	CheckDNS           = "dns"
	CheckNetworkPolicy = "networkpolicy"
	CheckMeshRoute     = "meshRoute" // GRPCRoutes on the Service (GAMMA), as proxyless xDS clients get them
)

// Finding is one conclusion: how bad, which check, what, the evidence, and the fix.
type Finding struct {
	Severity Severity `json:"severity"`
	Check    string   `json:"check"`
	Message  string   `json:"message"`
	Evidence []string `json:"evidence,omitempty"`
	Fix      string   `json:"fix,omitempty"`
}

// Subject is what was diagnosed: the Service and the client calling it.
type Subject struct {
	Namespace string `json:"namespace"`
	Service   string `json:"service"`
	Port      int32  `json:"port,omitempty"` // the Service port the client dials (0: not found)
	LB        string `json:"lb"`
	TLS       bool   `json:"tls"`
	FromPod   string `json:"fromPod,omitempty"`
	// Prometheus is the server the metrics checks asked (-prometheus), if any.
	Prometheus string `json:"prometheus,omitempty"`
}

// Report is the whole diagnosis.
type Report struct {
	Subject  Subject   `json:"subject"`
	Findings []Finding `json:"findings"`
	Errors   int       `json:"errors"`
	Warnings int       `json:"warnings"`
	// Metrics are the numbers the metrics checks judged (-prometheus), per pod.
	Metrics *Metrics `json:"metrics,omitempty"`
}

func (r *Report) add(f Finding) {
	r.Findings = append(r.Findings, f)
	switch f.Severity {
	case Error:
		r.Errors++
	case Warning:
		r.Warnings++
	}
}

// WriteJSON writes r as indented JSON.
func (r Report) WriteJSON(w io.Writer) error {
	if r.Findings == nil {
		r.Findings = []Finding{}
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// WriteText writes r for a terminal: one line per finding, evidence and fix under the
// ones that need action (warnings and errors), or under every finding with verbose.
func (r Report) WriteText(w io.Writer, verbose bool) error {
	var b strings.Builder
	s := r.Subject
	tls := "plaintext"
	if s.TLS {
		tls = "TLS"
	}
	fmt.Fprintf(&b, "greeter doctor: Service %s/%s", s.Namespace, s.Service)
	if s.Port != 0 {
		fmt.Fprintf(&b, " port %d", s.Port)
	}
	fmt.Fprintf(&b, ", client %s %s", s.LB, tls)
	if s.FromPod != "" {
		fmt.Fprintf(&b, " from pod %s", s.FromPod)
	}
	if s.Prometheus != "" {
		fmt.Fprintf(&b, ", metrics from %s", s.Prometheus)
	}
	b.WriteString("\n")
	for _, f := range r.Findings {
		fmt.Fprintf(&b, "%-7s %-13s %s\n", strings.ToUpper(f.Severity.String()), f.Check, f.Message)
		if f.Severity < Warning && !verbose {
			continue
		}
		for _, e := range f.Evidence {
			fmt.Fprintf(&b, "%22s%s\n", "· ", e)
		}
		if f.Fix != "" {
			fmt.Fprintf(&b, "%22s%s\n", "fix: ", f.Fix)
		}
	}
	fmt.Fprintf(&b, "%d error(s), %d warning(s)\n", r.Errors, r.Warnings)
	_, err := io.WriteString(w, b.String())
	return err
}
