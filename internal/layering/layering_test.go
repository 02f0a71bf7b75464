package layering

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// module is the project's module path.
const module = "github.com/embassy-dev/embassy"

// layers are the project's packages, bottom first, as docs/design.md's
// diagram draws them ("Parts and their dependencies"). A package imports
// only packages of lower layers; a pattern ending in "/..." names a folder
// and everything under it. Every package is in exactly one layer: a new
// one is placed here (and in the design's table) when it is added.
var layers = []struct {
	name     string
	packages []string
}{
	{"leaves", []string{"internal/atomicfile", "internal/lockfile", "internal/httpguard", "internal/stats", "internal/pagecache", "internal/textdiff", "internal/stacktest", "site", "label", "seal", "erasure", "custody/shamir", "s3/sigv4"}},
	{"site drivers, formats, placement", []string{"site/dir", "site/s3site", "site/memory", "site/fault", "site/sitetest", "access", "manifest", "placement", "custody/sharefile"}},
	{"index, catalogue, custody", []string{"index", "catalog", "custody", "internal/benchutil"}},
	{"index drivers, audit log, federation", []string{"index/boltindex", "index/indextest", "audit", "federation"}},
	{"evidence", []string{"evidence", "audit/audittest"}},
	{"engine", []string{"vault"}},
	{"housekeeping and front ends", []string{"housekeeping", "s3", "taxii"}},
	{"wiring", []string{"node"}},
	{"commands and whole-system tests", []string{"cmd/embassy", "bench/s3bench", "e2e", "interop", "internal/layering"}},
}

// rules are narrower than the layers: what a package of a layer may still
// not import.
var rules = []struct {
	from    string   // a package pattern
	allowed []string // the only project packages it may import (nil: any lower)
	denied  []string // project packages it must not import
	why     string
}{
	{from: "site/...", allowed: []string{"site", "internal/..."}, why: "a site driver imports nothing above site"},
	{from: "vault", denied: []string{"custody/..."}, why: "the engine declares the key operations it needs as small interfaces (vault.Keys), which custody implements"},
}

// pkg is what `go list` says of a package.
type pkg struct {
	ImportPath string
	Imports    []string // its own files' (not its tests')
}

// rel returns a project import path relative to the module ("" for the
// module's root), and whether it is the project's.
func rel(path string) (string, bool) {
	if path == module {
		return "", true
	}
	r, ok := strings.CutPrefix(path, module+"/")
	return r, ok
}

// match reports whether package p matches pattern pat.
func match(pat, p string) bool {
	if dir, ok := strings.CutSuffix(pat, "/..."); ok {
		return p == dir || strings.HasPrefix(p, dir+"/")
	}
	return pat == p
}

func matchAny(pats []string, p string) bool {
	return slices.ContainsFunc(pats, func(pat string) bool { return match(pat, p) })
}

// layerOf returns the layer of p, or -1 if it is in none.
func layerOf(p string) int {
	for i, l := range layers {
		if matchAny(l.packages, p) {
			return i
		}
	}
	return -1
}

// check returns what is wrong with the imports of pkgs: a package in no
// layer or in two, an import of the same or
// a higher layer, an import a rule forbids. Only what a package's own
// files import is held to the layers: its tests may import any package
// (the S3 front end's tests run a whole node, a driver's tests the
// conformance suite beside it, the engine's a real keyring), and Go
// refuses the import cycles that could follow.
func check(pkgs []pkg) []string {
	var errs []string
	for _, p := range pkgs {
		from, _ := rel(p.ImportPath)
		n := 0
		for _, l := range layers {
			if matchAny(l.packages, from) {
				n++
			}
		}
		if n != 1 {
			errs = append(errs, fmt.Sprintf("package %s is in %d layers, want one: place it in layers (internal/layering) and in docs/design.md's table of parts", from, n))
			continue
		}
		lf := layerOf(from)
		for _, imp := range p.Imports {
			to, ok := rel(imp)
			if !ok || to == from {
				continue
			}
			if lt := layerOf(to); lt >= lf {
				errs = append(errs, fmt.Sprintf("%s imports %s: %s is in layer %d (%s), %s in layer %d (%s); a package imports only packages of lower layers (docs/design.md, Parts and their dependencies)",
					from, to, from, lf, layers[lf].name, to, lt, layers[lt].name))
			}
			for _, r := range rules {
				if !match(r.from, from) {
					continue
				}
				if (r.allowed != nil && !matchAny(r.allowed, to)) || matchAny(r.denied, to) {
					errs = append(errs, fmt.Sprintf("%s imports %s: %s", from, to, r.why))
				}
			}
		}
	}
	return errs
}

// TestLayering: every package of the project is in one layer and imports
// only packages of lower layers, within the rules.
func TestLayering(t *testing.T) {
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	var pkgs []pkg
	for d := json.NewDecoder(bytes.NewReader(out)); ; {
		var p pkg
		if err := d.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list's output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 30 {
		t.Fatalf("go list found %d packages of %s, want the whole project", len(pkgs), module)
	}
	for _, e := range check(pkgs) {
		t.Error(e)
	}
}

// TestLayeringCheck: the check finds an import of a higher layer, of the
// same layer, one a rule forbids, and a package in no layer, and passes
// imports that point down.
func TestLayeringCheck(t *testing.T) {
	p := func(path string, imports ...string) pkg {
		ip := module + "/" + path
		var abs []string
		for _, i := range imports {
			if strings.Contains(i, ".") {
				abs = append(abs, i)
			} else {
				abs = append(abs, module+"/"+i)
			}
		}
		return pkg{ImportPath: ip, Imports: abs}
	}
	for _, c := range []struct {
		name string
		pkgs []pkg
		want []string // a part of each message, in order
	}{
		{"downward", []pkg{p("vault", "site", "placement", "audit", "fmt", "github.com/klauspost/reedsolomon"), p("node", "vault", "custody"), p("site/dir", "site", "internal/atomicfile")}, nil},
		{"upward", []pkg{p("vault", "s3")}, []string{"vault imports s3: vault is in layer 5 (engine), s3 in layer 6"}},
		{"same layer", []pkg{p("s3", "taxii")}, []string{"s3 imports taxii"}},
		{"driver above site", []pkg{p("site/dir", "label")}, []string{"site/dir imports label: a site driver imports nothing above site"}},
		{"engine imports custody", []pkg{p("vault", "custody")}, []string{"vault imports custody: the engine declares"}},
		{"no layer", []pkg{p("newpart", "site")}, []string{"package newpart is in 0 layers"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := check(c.pkgs)
			if len(got) != len(c.want) {
				t.Fatalf("check found %d problems, want %d:\n%s", len(got), len(c.want), strings.Join(got, "\n"))
			}
			for i, w := range c.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("problem %d: %q, want it to say %q", i, got[i], w)
				}
			}
		})
	}
}
