package temporal

import (
	"encoding/json"
	"testing"
)

// The same cases as the library's printable (src/providers/kit/text.rs).
func TestPrintableEscapesC0DelC1AndBidiOnly(t *testing.T) {
	for in, want := range map[string]string{
		"a\x1b[2Jb":              `a\u{1b}[2Jb`,
		"\u009b31m\x7f":          `\u{9b}31m\u{7f}`,
		"x\ny\t":                 `x\u{a}y\u{9}`,
		"evil\u202egpj.exe":      `evil\u{202e}gpj.exe`,
		"\u2066iso\u2069":        `\u{2066}iso\u{2069}`,
		"disk\x1b]52;c;aGk=\x07": `disk\u{1b}]52;c;aGk=\u{7}`,
		"raw\x9bbyte":            `raw\x{9b}byte`,
		"disk-1 é 日本 \uFFFD":     "disk-1 é 日本 \uFFFD",
		"":                       "",
	} {
		if got := Printable(in); got != want {
			t.Errorf("Printable(%q) = %q, want %q", in, got, want)
		}
	}
	js, _ := json.Marshal(map[string]string{"k": "a\x1b\u009b\u202e\x7f"})
	out := PrintableJSON(js)
	if string(out) != `{"k":"a\u001b\u009b\u202e\u007f"}` {
		t.Fatalf("PrintableJSON: %s", out)
	}
	var back map[string]string
	if err := json.Unmarshal(out, &back); err != nil || back["k"] != "a\x1b\u009b\u202e\x7f" {
		t.Fatalf("PrintableJSON changed the value: %v %q", err, back["k"])
	}
}
