package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/embassy-dev/embassy/internal/lockfile"
)

// TestMain lets the test binary stand in for the embassy command: scripts
// run "embassy ..." as a child process of this binary, exactly as main
// would, so exit status, stdout and stderr are the real ones.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"embassy":         embassyMain,
		"scripted-editor": scriptedEditor,
	})
}

// embassyMain does what main does: it runs the CLI on the process's own
// arguments and streams, and exits 1 on error.
func embassyMain() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		os.Exit(1)
	}
}

// scriptedEditor stands in for a person at $EDITOR: "scripted-editor FILE"
// replaces the first EDIT_OLD in FILE with EDIT_NEW (appends EDIT_NEW when
// EDIT_OLD is empty); in both, a literal \n is a newline. It fails when
// EDIT_OLD is not in the file, so a script cannot pass by editing nothing.
func scriptedEditor() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: scripted-editor FILE")
		os.Exit(2)
	}
	b, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	unescape := func(s string) string { return strings.ReplaceAll(s, `\n`, "\n") }
	old, repl := unescape(os.Getenv("EDIT_OLD")), unescape(os.Getenv("EDIT_NEW"))
	s := string(b)
	switch {
	case old == "":
		s += repl
	case !strings.Contains(s, old):
		fmt.Fprintf(os.Stderr, "scripted-editor: %q is not in %s\n", old, os.Args[1])
		os.Exit(1)
	default:
		s = strings.Replace(s, old, repl, 1)
	}
	if err := os.WriteFile(os.Args[1], []byte(s), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// TestScripts runs the end-to-end specifications in testdata/*.txtar. Each
// script starts in an empty $WORK directory; see the comments in the
// scripts for what each one establishes.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata",
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"gen":      cmdGen,
			"slice":    cmdSlice,
			"capture":  cmdCapture,
			"flip":     cmdFlip,
			"replace":  cmdReplace,
			"waitlock": cmdWaitLock,
		},
	})
}

// cmdGen implements "gen FILE SIZE SEED": write SIZE pseudo-random bytes,
// the same for the same seed, so scripts need not carry binary files.
func cmdGen(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! gen")
	}
	if len(args) != 3 {
		ts.Fatalf("usage: gen FILE SIZE SEED")
	}
	size, err := strconv.Atoi(args[1])
	ts.Check(err)
	seed, err := strconv.ParseUint(args[2], 10, 64)
	ts.Check(err)
	rng := rand.New(rand.NewPCG(seed, 0x656d62617373))
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), b, 0o644))
}

// cmdSlice implements "slice SRC START END DST": copy bytes START..END
// (inclusive, as --range counts them) of SRC to DST, the expected result of
// a ranged get.
func cmdSlice(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! slice")
	}
	if len(args) != 4 {
		ts.Fatalf("usage: slice SRC START END DST")
	}
	b, err := os.ReadFile(ts.MkAbs(args[0]))
	ts.Check(err)
	start, err := strconv.Atoi(args[1])
	ts.Check(err)
	end, err := strconv.Atoi(args[2])
	ts.Check(err)
	if start < 0 || end < start || end >= len(b) {
		ts.Fatalf("slice %s: %d-%d is outside its %d bytes", args[0], start, end, len(b))
	}
	ts.Check(os.WriteFile(ts.MkAbs(args[3]), b[start:end+1], 0o644))
}

// cmdCapture implements "capture [-stderr] VAR REGEXP": set VAR to the
// first submatch of REGEXP in the last command's standard output (or
// error), so a later command can name a version id a put printed.
func cmdCapture(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! capture")
	}
	stream := "stdout"
	if len(args) > 0 && args[0] == "-stderr" {
		stream, args = "stderr", args[1:]
	}
	if len(args) != 2 {
		ts.Fatalf("usage: capture [-stderr] VAR REGEXP")
	}
	re, err := regexp.Compile(args[1])
	ts.Check(err)
	if re.NumSubexp() != 1 {
		ts.Fatalf("capture: %q must have exactly one group", args[1])
	}
	m := re.FindStringSubmatch(ts.ReadFile(stream))
	if m == nil {
		ts.Fatalf("capture: %q does not match %s", args[1], stream)
	}
	ts.Setenv(args[0], m[1])
	ts.Logf("%s=%s", args[0], m[1])
}

// cmdFlip implements "flip FILE OFFSET": invert the lowest bit of the byte
// at OFFSET (negative: from the end), a one-bit corruption. Flipping twice
// restores the file.
func cmdFlip(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! flip")
	}
	if len(args) != 2 {
		ts.Fatalf("usage: flip FILE OFFSET")
	}
	b, err := os.ReadFile(ts.MkAbs(args[0]))
	ts.Check(err)
	off, err := strconv.Atoi(args[1])
	ts.Check(err)
	if off < 0 {
		off += len(b)
	}
	if off < 0 || off >= len(b) {
		ts.Fatalf("flip %s: offset %s outside its %d bytes", args[0], args[1], len(b))
	}
	b[off] ^= 1
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), b, 0o644))
}

// cmdReplace implements "replace FILE OLD NEW": replace every OLD in FILE
// with NEW (a hand edit of a file, as an operator or an intruder makes it).
func cmdReplace(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! replace")
	}
	if len(args) != 3 {
		ts.Fatalf("usage: replace FILE OLD NEW")
	}
	b, err := os.ReadFile(ts.MkAbs(args[0]))
	ts.Check(err)
	if !strings.Contains(string(b), args[1]) {
		ts.Fatalf("%s does not contain %q", args[0], args[1])
	}
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), []byte(strings.ReplaceAll(string(b), args[1], args[2])), 0o600))
}

// cmdWaitLock implements "waitlock PATH": wait, up to a minute, until a
// process holds a flock on PATH (a file or a directory), as a node does on
// its sites and hosting directory while it is open; a script then knows a
// node started in the background has them.
func cmdWaitLock(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! waitlock")
	}
	if len(args) != 1 {
		ts.Fatalf("usage: waitlock PATH")
	}
	path := ts.MkAbs(args[0])
	deadline := time.Now().Add(time.Minute)
	for {
		if who := lockfile.Holder(path); strings.HasPrefix(who, "process ") {
			ts.Logf("%s is held by %s", path, who)
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("waitlock: nobody holds a lock on %s after a minute", path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
