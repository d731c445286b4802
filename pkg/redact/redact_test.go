package redact

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
)

const password = "s3ntinel-Pa55word"

func basic(user, password string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
}

// written writes each piece through a Writer holding secrets, closes it and returns the output.
func written(t *testing.T, secrets []string, pieces ...string) string {
	t.Helper()
	var out bytes.Buffer
	w := New(&out)
	w.Add(secrets...)
	for _, p := range pieces {
		if n, err := w.Write([]byte(p)); err != nil || n != len(p) {
			t.Fatalf("Write(%q) = %d, %v", p, n, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

func TestMasksEveryForm(t *testing.T) {
	user := "concourse"
	cases := map[string]string{
		"plain":              "ERROR: bad password " + password + "\n",
		"basic header":       "Authorization: Basic " + basic(user, password) + "\n",
		"base64 alone":       "token " + base64.StdEncoding.EncodeToString([]byte(password)) + "\n",
		"base64 url-safe":    base64.URLEncoding.EncodeToString([]byte("x?"+password+"?>")) + "\n",
		"base64 other users": "Basic " + basic("someone-else", password) + " and " + basic("ab", password) + "\n",
		"json":               `{"message":"no: ` + password + `"}` + "\n",
	}
	for name, line := range cases {
		t.Run(name, func(t *testing.T) {
			got := written(t, []string{password, user + ":" + password}, line)
			assertHidden(t, got, user, password)
			if !strings.Contains(got, Mask) {
				t.Errorf("no mask in %q", got)
			}
		})
	}
}

func TestEscapedSecret(t *testing.T) {
	secret := `p&"ss w<rd>`
	got := written(t, []string{secret}, `{"m":"p&\"ss w<rd>","html":"p\u0026\"ss w\u003crd\u003e"} q=`+"p%26%22ss+w%3Crd%3E\n")
	if want := `{"m":"***","html":"***"} q=***` + "\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestSecretSplitAcrossWrites(t *testing.T) {
	header := "Authorization: Basic " + basic("u", password)
	line := "WARNING: registry said " + password + " and " + header + "\n"
	for _, size := range []int{1, 2, 3, 5, 7, 64} {
		var pieces []string
		for rest := line; rest != ""; {
			n := min(size, len(rest))
			pieces, rest = append(pieces, rest[:n]), rest[n:]
		}
		got := written(t, []string{password, "u:" + password}, pieces...)
		assertHidden(t, got, "u", password)
		if want := "WARNING: registry said *** and Authorization: Basic ***\n"; got != want {
			t.Errorf("pieces of %d: got %q, want %q", size, got, want)
		}
	}
}

func TestUnfinishedLineHeldUntilFlush(t *testing.T) {
	var out bytes.Buffer
	w := New(&out)
	w.Add(password)
	w.Write([]byte("one " + password[:4]))
	if out.Len() != 0 {
		t.Fatalf("an unfinished line was written: %q", out.String())
	}
	w.Write([]byte(password[4:] + " two\nthree " + password))
	if got := out.String(); got != "one *** two\n" {
		t.Fatalf("after the first line: %q", got)
	}
	w.Flush()
	if got := out.String(); got != "one *** two\nthree ***" {
		t.Fatalf("after Flush: %q", got)
	}
}

func TestMultipleAndOverlappingSecrets(t *testing.T) {
	got := written(t, []string{"first-secret", "second-secret", "secret-second"},
		"a first-secret b second-secret c first-secret-second-secret d\n")
	if want := "a *** b *** c *** d\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestEmptySecretIgnored(t *testing.T) {
	line := "nothing to hide here\n"
	if got := written(t, []string{"", ""}, line); got != line {
		t.Errorf("got %q, want %q", got, line)
	}
	if forms := Forms(""); len(forms) != 0 {
		t.Errorf("Forms(\"\") = %q", forms)
	}
}

func TestSecretAddedLaterAppliesToNextLines(t *testing.T) {
	var out bytes.Buffer
	w := New(&out)
	w.Write([]byte("before\n"))
	w.Add(password)
	w.Write([]byte("after " + password + "\n"))
	if got := out.String(); got != "before\nafter ***\n" {
		t.Errorf("got %q", got)
	}
	if got := w.String("x " + password); got != "x ***" {
		t.Errorf("String: %q", got)
	}
}

func TestLongLineWithoutNewlineIsCutSafely(t *testing.T) {
	var out bytes.Buffer
	w := New(&out)
	w.Add(password)
	filler := strings.Repeat("x", maxPending-5)
	w.Write([]byte(filler + password[:9])) // the secret straddles the point where the line is cut
	w.Write([]byte(password[9:] + " end"))
	if out.Len() == 0 {
		t.Fatal("nothing written past the pending limit")
	}
	w.Flush()
	if got, want := out.String(), filler+"*** end"; got != want {
		t.Errorf("got ...%q, want ...%q", got[max(len(got)-30, 0):], want[len(want)-30:])
	}
}

func assertHidden(t *testing.T, got, user, password string) {
	t.Helper()
	for _, leak := range []string{password, basic(user, password), base64.StdEncoding.EncodeToString([]byte(password)),
		base64.RawStdEncoding.EncodeToString([]byte(password))} {
		if strings.Contains(got, leak) {
			t.Errorf("%q shows in %q", leak, got)
		}
	}
}
