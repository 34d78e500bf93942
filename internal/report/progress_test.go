package report

import "testing"

func TestProgressRoundTrip(t *testing.T) {
	for _, p := range []Progress{
		{Calls: 1200, Failed: 3, ElapsedS: 6.01, DurationS: 180},
		{Messages: 4242, Open: 30, Reconnects: 2, ElapsedS: 12.5},
		{Calls: 10, ElapsedS: 0.5, PlannedCalls: 300},
	} {
		got, ok := ParseProgress(p.JSONLine())
		if !ok || got != p {
			t.Errorf("ParseProgress(%s) = %+v, %v; want %+v", p.JSONLine(), got, ok, p)
		}
	}
}

func TestParseProgressRejectsOtherLines(t *testing.T) {
	for _, line := range []string{
		"",
		"progress: 1200 calls, 0 failed, 200 calls/s, 6s elapsed", // the text form is for people
		`{"calls": 300, "ok": 300}`,                               // a report
		`{"progress": null}`,
		`{"progress": {"calls": "many"}}`,
		"2026/12/01 22:48:11 grpc: addrConn.createTransport failed",
	} {
		if p, ok := ParseProgress(line); ok {
			t.Errorf("ParseProgress(%q) = %+v, true; want false", line, p)
		}
	}
}

func TestProgressCountAndText(t *testing.T) {
	calls := Progress{Calls: 1200, Failed: 1, ElapsedS: 6, DurationS: 180}
	if calls.Count() != 1200 {
		t.Errorf("Count of a call load = %d, want 1200", calls.Count())
	}
	if got, want := calls.Text(false), "progress: 1200 calls, 1 failed, 200 calls/s, 6s elapsed of 3m0s"; got != want {
		t.Errorf("Text = %q, want %q", got, want)
	}
	msgs := Progress{Messages: 600, Open: 30, ElapsedS: 2, PlannedCalls: 0}
	if msgs.Count() != 600 {
		t.Errorf("Count of a stream load = %d, want 600", msgs.Count())
	}
	if got, want := msgs.Text(true), "progress: 600 messages, 30 streams open, 0 reconnects, 2s elapsed"; got != want {
		t.Errorf("Text = %q, want %q", got, want)
	}
}
