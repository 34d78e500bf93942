package catalog

import (
	"slices"
	"testing"
)

// Every method in the table exists in its generated descriptor, and every unary method of
// the descriptor is in the table (a new RPC without its line fails here).
func TestTableMatchesDescriptors(t *testing.T) {
	for _, s := range All() {
		var unary []string
		for _, m := range s.Desc.Methods {
			unary = append(unary, m.MethodName)
		}
		var table []string
		for _, m := range s.Methods {
			table = append(table, m.Name)
		}
		slices.Sort(unary)
		slices.Sort(table)
		if !slices.Equal(unary, table) {
			t.Errorf("%s: table methods %v, descriptor's unary methods %v", s.Key, table, unary)
		}
		var streams, streamTable []string
		for _, m := range s.Desc.Streams {
			streams = append(streams, m.StreamName)
			kind := ServerStreaming
			if m.ClientStreams {
				kind = BidiStreaming
			}
			if got, err := s.Stream(kind, m.StreamName); err != nil || got.Kind != kind {
				t.Errorf("%s/%s: table kind %q (%v), descriptor %q", s.Key, m.StreamName, got.Kind, err, kind)
			}
		}
		for _, m := range s.Streams {
			streamTable = append(streamTable, m.Name)
		}
		slices.Sort(streams)
		slices.Sort(streamTable)
		if !slices.Equal(streams, streamTable) {
			t.Errorf("%s: table streams %v, descriptor's streaming methods %v", s.Key, streamTable, streams)
		}
		if got, err := Lookup(s.Key); err != nil || got.Name() != s.Name() {
			t.Errorf("Lookup(%q) = %v, %v", s.Key, got.Name(), err)
		}
	}
	if _, err := Lookup("nope"); err == nil {
		t.Error("Lookup of an unknown key: no error")
	}
	if _, err := Hello().Method("SayNothing"); err == nil {
		t.Error("Method of an unknown name: no error")
	}
}
