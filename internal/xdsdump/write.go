package xdsdump

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// Wait fetches the dump until the client settled (Settled) and two fetches in a row agree,
// or ctx ends; then it returns the last dump, settled or not (what arrived is the answer).
// connect starts the channel's resolver (ClientConn.Connect): a new channel is idle and
// asks the control plane for nothing.
func Wait(ctx context.Context, connect func(), every time.Duration) (Dump, error) {
	connect()
	var last Dump
	var lastJSON []byte
	for {
		resp, err := Fetch(ctx)
		if err != nil {
			return last, err
		}
		d := Parse(resp)
		js, err := json.Marshal(d)
		if err != nil {
			return last, fmt.Errorf("encode dump: %w", err)
		}
		if d.Settled() && string(js) == string(lastJSON) {
			return d, nil
		}
		last, lastJSON = d, js
		select {
		case <-ctx.Done():
			return last, nil
		case <-time.After(every):
		}
	}
}

// WriteJSON writes d as indented JSON.
func (d Dump) WriteJSON(w io.Writer) error {
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return fmt.Errorf("encode dump: %w", err)
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// WriteText writes d for a terminal: resources and their status, then the routes with
// their weights (and shares), the clusters, and the endpoints.
func (d Dump) WriteText(w io.Writer) error {
	var b strings.Builder
	for _, c := range d.Clients {
		fmt.Fprintf(&b, "xDS client for %s, node %s\n", c.Scope, c.NodeID)
	}
	if len(d.Clients) == 0 {
		b.WriteString("no xDS client in this process (not an xds:/// target, or the channel never started)\n")
	}
	b.WriteString("\nresources:\n")
	for _, r := range d.Resources {
		fmt.Fprintf(&b, "  %-14s %-22s %s", r.Status, r.Type, r.Name)
		if r.Version != "" {
			fmt.Fprintf(&b, "  (version %s)", r.Version)
		}
		b.WriteString("\n")
		if r.Error != "" {
			fmt.Fprintf(&b, "  %-14s error: %s\n", "", r.Error)
		}
	}
	if len(d.Listeners) > 0 {
		b.WriteString("\nlisteners:\n")
		for _, l := range d.Listeners {
			fmt.Fprintf(&b, "  %s -> routes %s\n", l.Name, l.RouteConfig)
		}
	}
	for _, rc := range d.Routes {
		fmt.Fprintf(&b, "\nroutes %s (first match wins):\n", rc.Name)
		for _, vh := range rc.VirtualHosts {
			fmt.Fprintf(&b, "  virtual host %s, domains %s\n", vh.Name, strings.Join(vh.Domains, ", "))
			for i, r := range vh.Routes {
				fmt.Fprintf(&b, "    %d. %s", i+1, r.Path)
				for _, h := range r.Headers {
					fmt.Fprintf(&b, ", header %s", h)
				}
				b.WriteString("\n")
				if r.Action != "route" {
					fmt.Fprintf(&b, "       %s\n", r.Action)
				}
				var total uint64
				for _, c := range r.Clusters {
					total += uint64(c.Weight)
				}
				for _, c := range r.Clusters {
					if total == 0 {
						fmt.Fprintf(&b, "       -> %s\n", c.Name)
						continue
					}
					fmt.Fprintf(&b, "       -> %s weight %d (%.1f%%)\n", c.Name, c.Weight, 100*float64(c.Weight)/float64(total))
				}
				if r.Retry != "" {
					fmt.Fprintf(&b, "       retry: %s\n", r.Retry)
				}
				for _, x := range r.Ignored {
					fmt.Fprintf(&b, "       ignored by grpc-go (never reaches the server): %s\n", x)
				}
			}
		}
	}
	if len(d.Clusters) > 0 {
		b.WriteString("\nclusters:\n")
		for _, c := range d.Clusters {
			fmt.Fprintf(&b, "  %s: %s", c.Name, c.Discovery)
			if c.EDSService != "" && c.EDSService != c.Name {
				fmt.Fprintf(&b, " (endpoints %s)", c.EDSService)
			}
			fmt.Fprintf(&b, ", lb %s\n", c.LBPolicy)
		}
	}
	if len(d.Endpoints) > 0 {
		b.WriteString("\nendpoints:\n")
		for _, ce := range d.Endpoints {
			fmt.Fprintf(&b, "  %s: %d\n", ce.Cluster, len(ce.Endpoints))
			for _, e := range ce.Endpoints {
				fmt.Fprintf(&b, "    %s %s", e.Address, e.Health)
				if e.Weight != 0 {
					fmt.Fprintf(&b, " weight %d", e.Weight)
				}
				if e.Locality != "" {
					fmt.Fprintf(&b, " locality %s", e.Locality)
				}
				b.WriteString("\n")
			}
		}
	}
	if ps := d.Problems(); len(ps) > 0 {
		b.WriteString("\nnot ACKED:\n")
		for _, p := range ps {
			fmt.Fprintf(&b, "  %s\n", p)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
