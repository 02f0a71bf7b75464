package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A piece of `perf script -F comm,ip,sym,dso` output: an MD5 sample, a
// socket read in the kernel under a Go read, a page fault in the kernel
// alone, a sample perf could not unwind, and a generic shape with spaces.
const perfScriptSample = `embassy 
	          4a1b20 crypto/md5.block.abi0+0x20 (/tmp/embassy)
	          4a1c00 crypto/md5.(*digest).Write+0x40 (/tmp/embassy)

embassy 
	ffffffff81a0b0c0 _copy_to_iter+0x50 ([kernel.kallsyms])
	ffffffff81c0d0e0 tcp_recvmsg+0x70 ([kernel.kallsyms])
	ffffffff81000090 entry_SYSCALL_64+0x90 ([kernel.kallsyms])
	          4f0000 net.(*netFD).Read+0x10 (/tmp/embassy)

minio 
	ffffffff81234567 pvm_irq_enable+0x7 ([kernel.kallsyms])

minio 

minio 
	          27a4e88 github.com/minio/minio/internal/ioutil.WithDeadline[go.shape.struct { Name string }]+0x88 (/tmp/minio)
	          98e21 runtime.goexit.abi0 (/tmp/minio)
`

func TestParsePerfScript(t *testing.T) {
	var got []perfSample
	err := parsePerfScript(strings.NewReader(perfScriptSample), func(s perfSample) {
		got = append(got, perfSample{Frames: append([]perfFrame(nil), s.Frames...)})
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 {
		t.Fatalf("%d samples, want 4 (the one without frames skipped): %+v", len(got), got)
	}
	if f := got[0].Frames[0]; f.Sym != "crypto/md5.block.abi0" || f.Kernel {
		t.Errorf("first leaf %+v, want crypto/md5.block.abi0 in the program", f)
	}
	if f := got[1].Frames; len(f) != 4 || !f[0].Kernel || f[0].Sym != "_copy_to_iter" || f[3].Kernel {
		t.Errorf("second sample %+v", f)
	}
	if s := got[3].Frames[0].Sym; s != "github.com/minio/minio/internal/ioutil.WithDeadline[go.shape.struct { Name string }]" {
		t.Errorf("symbol with spaces read as %q", s)
	}
	want := []string{"MD5", "network receive (kernel)", perfOtherKernel, perfOther}
	for i, s := range got {
		if c := categorize(s); c != want[i] {
			t.Errorf("sample %d: category %q, want %q", i, c, want[i])
		}
	}
}

func TestParsePerfScriptErrors(t *testing.T) {
	for name, in := range map[string]string{
		"frame before header": "\t 4a1b20 crypto/md5.block\n",
		"address not hex":     "embassy \n\t zzzz crypto/md5.block (/x)\n",
		"no symbol":           "embassy \n\t 4a1b20\n",
	} {
		err := parsePerfScript(strings.NewReader(in), func(perfSample) {})
		if err == nil || !strings.Contains(err.Error(), "line ") {
			t.Errorf("%s: error %v, want one naming the line", name, err)
		}
	}
}

// The leaf rules look at the sampled function only: an MD5 further down
// a kernel stack (a fault while hashing) is the kernel's, not MD5's.
func TestCategorizeLeafOnly(t *testing.T) {
	s := perfSample{Frames: []perfFrame{
		{Sym: "asm_exc_page_fault", Kernel: true},
		{Sym: "crypto/md5.block.abi0"},
	}}
	if c := categorize(s); c != perfOtherKernel {
		t.Errorf("fault under MD5: %q, want %q", c, perfOtherKernel)
	}
	s = perfSample{Frames: []perfFrame{{Sym: "runtime.memmove"}, {Sym: "runtime.mallocgc"}}}
	if c := categorize(s); c != "copies and zeroing (user)" {
		t.Errorf("memmove under mallocgc: %q", c)
	}
}

func FuzzParsePerfScript(f *testing.F) {
	f.Add(perfScriptSample)
	f.Add("x\n\t1 y (z)\n\n")
	f.Fuzz(func(t *testing.T, in string) {
		n := 0
		err := parsePerfScript(strings.NewReader(in), func(s perfSample) {
			n++
			if len(s.Frames) == 0 {
				t.Fatal("a sample without frames was passed on")
			}
			for _, fr := range s.Frames {
				if fr.Sym == "" {
					t.Fatal("a frame without a symbol")
				}
			}
			categorize(s)
		})
		if err != nil && n < 0 {
			t.Fatal(err)
		}
	})
}

// TestPerfRecordsAPhase records this test process with the real perf while
// it hashes with MD5, and checks perfsum finds the MD5 and the bytes.
func TestPerfRecordsAPhase(t *testing.T) {
	if _, err := exec.LookPath("perf"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("perf is not installed (CI installs Debian's linux-perf): %v", err)
		}
		t.Skip("SKIPPED: perf (Debian's linux-perf) is not installed: s3bench run -perf is not tested")
	}
	dir := t.TempDir()
	// A child with symbols: go test links its binaries without them.
	bin := filepath.Join(dir, "md5burn")
	if out, err := exec.Command("go", "build", "-o", bin, "./testdata/md5burn").CombinedOutput(); err != nil {
		t.Fatalf("go build ./testdata/md5burn: %v\n%s", err, out)
	}
	child := exec.Command(bin)
	stdin, err := child.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer child.Process.Kill()
	rd := bufio.NewReader(stdout)
	if l, err := rd.ReadString('\n'); err != nil || l != "hashing\n" {
		t.Fatalf("md5burn: %q, %v", l, err)
	}
	rec := &perfRecorder{dir: dir, freq: 999, pid: child.Process.Pid}
	spec := caseSpec{Size: 1 << 20, Concurrency: 1, Count: 64}
	run, err := rec.start(context.Background(), "embassy", "put", spec)
	if err != nil {
		if os.Getenv("CI") == "" && (strings.Contains(err.Error(), "ermission") || strings.Contains(err.Error(), "paranoid")) {
			t.Skipf("SKIPPED: perf may not sample here: %v", err)
		}
		t.Fatal(err)
	}
	// Let the child hash 300 MiB under perf: it counts MiB and prints the
	// count when its input closes.
	for deadline := time.Now().Add(time.Minute); ; {
		if time.Now().After(deadline) {
			t.Fatal("perf wrote no samples of the child in a minute")
		}
		if fi, err := os.Stat(filepath.Join(dir, "embassy-put-1MiB-c1.data")); err == nil && fi.Size() > 4<<10 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := run.stop(); err != nil {
		t.Fatal(err)
	}
	stdin.Close()
	l, err := rd.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	mib, err := strconv.Atoi(strings.TrimSpace(l))
	if err != nil || mib == 0 {
		t.Fatalf("md5burn hashed %q MiB", l)
	}
	child.Wait()
	if err := run.finish(int64(mib) << 20); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "embassy-put-1MiB-c1.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ph perfPhase
	if err := json.Unmarshal(raw, &ph); err != nil || ph.Bytes != int64(mib)<<20 || ph.Data != "embassy-put-1MiB-c1.data" {
		t.Fatalf("sidecar %s: %+v, %v", raw, ph, err)
	}
	var out bytes.Buffer
	if err := perfSumCmd([]string{"-top", "3", dir}, &out); err != nil {
		t.Fatal(err)
	}
	var md5Row []string
	for _, l := range strings.Split(out.String(), "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == "MD5" {
			md5Row = f
		}
	}
	if md5Row == nil || md5Row[1] == "0.00" {
		t.Fatalf("perfsum found no MD5 in a phase that hashed %d MiB:\n%s", mib, out.String())
	}
}

func TestPerfSumRefusesAnEmptyDir(t *testing.T) {
	err := perfSumCmd([]string{t.TempDir()}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "no phase recorded") {
		t.Fatalf("error %v, want one saying nothing was recorded", err)
	}
	d := t.TempDir()
	os.WriteFile(filepath.Join(d, "x.json"), []byte(`{"data":"../etc/passwd"}`), 0o644)
	if err := perfSumCmd([]string{d}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "beside it") {
		t.Fatalf("error %v, want one refusing a data path outside the directory", err)
	}
}
