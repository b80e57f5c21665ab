package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	hstemporal "github.com/hypersdk/hypersdk/bindings/go/temporal"
)

// hostile is what a cloud or a wave's history can put in a name or a message: a clear-screen,
// an OSC 52 clipboard write ended by BEL, a C1 CSI, DEL, a bidi override, a newline, and a raw
// 0x9b byte (a CSI to an 8-bit terminal).
const hostile = "vm\x1b[2J\x1b]52;c;aGk=\x07 \u009b31m\x7f evil\u202egpj.exe\nnext\x9bX"

// rawControl reports the first byte sequence of out a terminal would act on, if any.
func rawControl(out string) string {
	for i, r := range out {
		if r == '\n' && i == len(out)-1 {
			continue
		}
		if (r < 0x20 && r != '\n') || (r >= 0x7f && r <= 0x9f) || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) {
			return strings.ToValidUTF8(out[max(0, i-10):i+1], "?")
		}
	}
	if !utf8.ValidString(out) {
		return "a byte that is not UTF-8"
	}
	return ""
}

func TestPrintedLinesCarryNoControlCharacters(t *testing.T) {
	st := hstemporal.WaveState{Running: 1, Failed: 1, Exports: []hstemporal.ExportState{
		{Dest: "d/" + hostile, Status: hstemporal.StatusRunning, Phase: "downloading" + hostile, Worker: "w" + hostile,
			Message: "msg " + hostile, BytesDone: 1, BytesTotal: 2},
		{Dest: "f/" + hostile, Status: hstemporal.StatusFailed, Error: "failed " + hostile},
	}}
	var b bytes.Buffer
	printState(&b, st)
	for _, line := range strings.SplitAfter(b.String(), "\n") {
		if bad := rawControl(line); bad != "" {
			t.Fatalf("a printed line carries %q: %q", bad, line)
		}
	}
	for _, want := range []string{`vm\u{1b}[2J\u{1b}]52;c;aGk=\u{7}`, `\u{9b}31m\u{7f}`, `evil\u{202e}gpj.exe\u{a}next\x{9b}X`} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("%q not in the printed lines:\n%s", want, b.String())
		}
	}

	b.Reset()
	printJSON(&b, st)
	if bad := rawControl(strings.ReplaceAll(b.String(), "\n", " ")); bad != "" {
		t.Fatalf("the JSON carries %q: %s", bad, b.String())
	}
	var back hstemporal.WaveState
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	// The same value (the raw byte becomes U+FFFD, as encoding/json writes any invalid UTF-8).
	if back.Exports[1].Error != strings.ToValidUTF8(st.Exports[1].Error, "\uFFFD") {
		t.Fatalf("the JSON changed the value: %q", back.Exports[1].Error)
	}
}
