package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/internal/atomicfile"
	"github.com/embassy-dev/embassy/node"
	"github.com/embassy-dev/embassy/s3"
)

// The --json conventions (docs/cli.md, Conventions): one JSON document on
// standard output; field names in snake_case and documented in the
// command's section of docs/cli.md; no null anywhere (an empty list is [],
// an absent object is left out); no zero time.

// docSections reads docs/cli.md and returns, for each "### " section, the
// field names it documents: every "quoted_name" in the section, and the
// `names` in the first column of its tables.
func docSections(t *testing.T) map[string]map[string]bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "cli.md"))
	if err != nil {
		t.Fatal(err)
	}
	quoted := regexp.MustCompile(`"([a-z][a-z0-9_]*)"`)
	cell := regexp.MustCompile("^\\| ((?:`[a-z][a-z0-9_]*`(?:, )?)+) \\|")
	ticked := regexp.MustCompile("`([a-z][a-z0-9_]*)`")
	out := map[string]map[string]bool{}
	var cur map[string]bool
	for line := range strings.SplitSeq(string(b), "\n") {
		if h, ok := strings.CutPrefix(line, "### "); ok {
			cur = map[string]bool{}
			out[strings.TrimSpace(h)] = cur
			continue
		}
		if strings.HasPrefix(line, "## ") {
			cur = nil
		}
		if cur == nil {
			continue
		}
		for _, m := range quoted.FindAllStringSubmatch(line, -1) {
			cur[m[1]] = true
		}
		if m := cell.FindStringSubmatch(line); m != nil {
			for _, n := range ticked.FindAllStringSubmatch(m[1], -1) {
				cur[n[1]] = true
			}
		}
	}
	return out
}

// dataMaps are fields whose keys are data (metadata keys, site ids,
// policy names), not field names.
var dataMaps = map[string]bool{"detail": true, "meta": true, "params": true, "clearances": true, "categories": true, "remaining_blobs": true}

var snake = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// checkJSON checks one command's standard output against the conventions
// and the names documented in the given sections of docs/cli.md.
func checkJSON(t *testing.T, docs map[string]map[string]bool, out string, sections ...string) {
	t.Helper()
	allowed := map[string]bool{}
	for _, s := range sections {
		names, ok := docs[s]
		if !ok {
			t.Fatalf("docs/cli.md has no section %q", s)
		}
		for n := range names {
			allowed[n] = true
		}
	}
	dec := json.NewDecoder(strings.NewReader(out))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Errorf("%s: standard output is not JSON: %v\n%s", sections[0], err, out)
		return
	}
	if rest, _ := io.ReadAll(dec.Buffered()); len(bytes.TrimSpace(rest)) > 0 || dec.More() {
		t.Errorf("%s: more than one JSON document on standard output:\n%s", sections[0], out)
	}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case nil:
			t.Errorf("%s: %s is null (an empty list is [], an absent value is left out)", sections[0], path)
		case string:
			if strings.HasPrefix(v, "0001-01-01T00:00:00") {
				t.Errorf("%s: %s is the zero time", sections[0], path)
			}
		case []any:
			for i, e := range v {
				walk(fmt.Sprintf("%s[%d]", path, i), e)
			}
		case map[string]any:
			for k, e := range v {
				p := path + "." + k
				if !snake.MatchString(k) {
					t.Errorf("%s: field %s is not snake_case", sections[0], p)
				}
				if !allowed[k] {
					t.Errorf("%s: field %s is not documented in docs/cli.md (sections %q)", sections[0], p, sections)
				}
				if dataMaps[k] {
					if m, ok := e.(map[string]any); ok {
						for dk, dv := range m {
							if dv == nil {
								t.Errorf("%s: %s.%s is null", sections[0], p, dk)
							}
						}
						continue
					}
				}
				walk(p, e)
			}
		}
	}
	walk("$", v)
}

// s3Provider serves S3 from an in-process development node, with the
// credential EMBSWESITE01 / not-for-printing, and returns its host:port.
func s3Provider(t *testing.T) string {
	t.Helper()
	d := filepath.Join(t.TempDir(), "provider")
	if _, err := node.InitDev(d, node.DevOptions{}); err != nil {
		t.Fatal(err)
	}
	n, err := node.Open(t.Context(), d, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	hs := httptest.NewServer(n.Handler(s3.Credential{AccessKey: "EMBSWESITE01", SecretKey: "not-for-printing", Principal: "admin"}))
	t.Cleanup(hs.Close)
	return strings.TrimPrefix(hs.URL, "http://")
}

// jsonStep is one command of the walk, with the docs/cli.md sections that
// document its JSON form (the first is its own).
type jsonStep struct {
	args     []string
	sections []string
	// lists are fields that must be present as lists, even empty:
	// "errors" at the top, "[].roles" in each element of a top-level
	// list, "vaults[].lost" in each element of a field's list.
	lists []string
}

// checkLists checks that each of paths is a JSON list in out.
func checkLists(t *testing.T, out string, paths []string) {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		return // reported by checkJSON
	}
	var at func(v any, path, whole string)
	at = func(v any, path, whole string) {
		head, rest, _ := strings.Cut(path, ".")
		name, each := strings.CutSuffix(head, "[]")
		if name != "" {
			m, ok := v.(map[string]any)
			if !ok {
				t.Errorf("%s: %v is not an object", whole, v)
				return
			}
			if v, ok = m[name]; !ok {
				t.Errorf("%s: field %s is missing (an empty list is [])", whole, name)
				return
			}
		}
		switch {
		case rest == "":
			if _, ok := v.([]any); !ok {
				t.Errorf("%s: %v is not a list", whole, v)
			}
		case each:
			l, ok := v.([]any)
			if !ok {
				t.Errorf("%s: %s is %v, not a list", whole, head, v)
				return
			}
			for _, e := range l {
				at(e, rest, whole)
			}
		default:
			at(v, rest, whole)
		}
	}
	for _, p := range paths {
		at(v, p, p)
	}
}

// TestJSONOutputs runs every command that has a JSON form and checks its
// output against docs/cli.md and the conventions.
func TestJSONOutputs(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every command; skipped with -short")
	}
	docs := docSections(t)
	work := t.TempDir()
	dir := filepath.Join(work, "node")
	sites := filepath.Join(work, "sites")
	d := func(args ...string) []string { return append([]string{"--dir", dir, "--json"}, args...) }
	step := func(s jsonStep) string {
		t.Helper()
		out, stderr, err := runCLI(t, s.args...)
		if err != nil {
			t.Fatalf("embassy %s: %v\n%s", strings.Join(s.args, " "), err, stderr)
		}
		checkJSON(t, docs, out, s.sections...)
		checkLists(t, out, s.lists)
		return out
	}
	obj := []string{"Object JSON"}
	os.WriteFile(filepath.Join(work, "minutes.txt"), []byte("Cabinet minutes, 25 November 2026.\n"), 0o644)

	step(jsonStep{d("init", "--nation", "EST"), []string{"init"}, []string{"shares"}})
	// Empty lists are [], not null.
	if out := step(jsonStep{d("vault", "ls"), []string{"vault ls", "vault create"}, nil}); strings.TrimSpace(out) != "[]" {
		t.Errorf("vault ls --json of no vaults printed %s, want []", out)
	}
	if out := step(jsonStep{d("site", "ls"), []string{"site ls", "site add"}, nil}); strings.TrimSpace(out) != "[]" {
		t.Errorf("site ls --json of no sites printed %s, want []", out)
	}
	// A development node: dangerous operations run at once.
	c, err := node.LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	c.Node.Dev = true
	if err := node.SaveConfig(dir, c); err != nil {
		t.Fatal(err)
	}
	for _, s := range []struct{ id, j, p, ctl string }{{"est-1", "EST", "gov-dc", "EST"}, {"est-2", "EST", "cloudco", "USA"}, {"lux-1", "LUX", "gov-dc", "EST"},
		{"lux-2", "LUX", "cloudco", "USA"}, {"fin-1", "FIN", "gov-dc", "EST"}, {"fin-2", "FIN", "cloudco", "USA"}, {"est-3", "EST", "gov-dc", "EST"}} {
		step(jsonStep{d("site", "add", s.id, "--path", filepath.Join(sites, s.id), "--jurisdiction", s.j, "--provider", s.p, "--control", s.ctl, "--accredited", "NATO SECRET"), []string{"site add"}, nil})
	}
	step(jsonStep{d("site", "ls"), []string{"site ls", "site add"}, nil})
	// An S3 site's settings, on a node of its own; the provider is another
	// embassy node ('site add' writes the site's marker there).
	s3node := filepath.Join(work, "s3node")
	step(jsonStep{[]string{"--dir", s3node, "--json", "init", "--nation", "EST"}, []string{"init"}, nil})
	out := step(jsonStep{[]string{"--dir", s3node, "--json", "site", "add", "swe-s3", "--driver", "s3", "--s3-endpoint", s3Provider(t), "--s3-bucket", "est-embassy", "--s3-create-bucket",
		"--s3-prefix", "est/swe", "--s3-access-key", "EMBSWESITE01", "--s3-secret-key", "not-for-printing", "--jurisdiction", "SWE", "--provider", "nordcloud"}, []string{"site add"}, nil})
	if !strings.Contains(out, `"secret_key": "REDACTED"`) || strings.Contains(out, "not-for-printing") {
		t.Errorf("site add --json does not redact the S3 secret:\n%s", out)
	}
	step(jsonStep{[]string{"--dir", s3node, "--json", "site", "ls"}, []string{"site ls", "site add"}, nil})
	out = step(jsonStep{d("vault", "create", "registry", "--erasure", "4+2", "--survive", "jurisdictions=1"), []string{"vault create"}, []string{"jurisdictions"}})
	if !strings.Contains(out, `"created": "20`) {
		t.Errorf("vault create --json does not say when the vault was created:\n%s", out)
	}
	step(jsonStep{d("vault", "ls"), []string{"vault ls", "vault create"}, []string{"[].jurisdictions"}})
	step(jsonStep{d("principal", "ls"), []string{"principal ls"}, []string{"[].roles"}})
	// TAXII: a collection, a bundle added to it, its index rebuilt.
	step(jsonStep{d("taxii", "collection", "create", "cti", "--vault", "registry", "--title", "Incidents"), []string{"taxii collection create", "config edit"}, []string{"changes"}})
	step(jsonStep{d("taxii", "collection", "ls"), []string{"taxii collection ls"}, []string{"[].community", "[].amber", "[].statements"}})
	os.WriteFile(filepath.Join(work, "bundle.json"), []byte(`{"type": "bundle", "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56d", "objects": [
	 {"type": "malware", "spec_version": "2.1", "id": "malware--c2ab920f-7fad-4234-b29d-467638e99df0", "created": "2026-03-02T09:30:00.000Z",
	  "modified": "2026-03-02T09:30:00.000Z", "name": "TallinnLoader", "is_family": true,
	  "object_marking_refs": ["marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421"]}]}`), 0o644)
	step(jsonStep{d("taxii", "add", "cti", filepath.Join(work, "bundle.json")), []string{"taxii add"}, []string{"successes", "failures", "pendings"}})
	step(jsonStep{d("taxii", "index", "rebuild"), []string{"taxii index rebuild"}, nil})
	// The catalogue: a dataset described (released to LUX: a development
	// node needs no custodians), listed.
	step(jsonStep{d("dataset", "describe", "registry/2026/", "--title", "Population register", "--keyword", "population", "--theme", "GOVE", "--spatial", "EST",
		"--temporal", "2026/..", "--media-type", "text/csv", "--label", "NATO RESTRICTED//REL TO LUX"), []string{"dataset describe", "dataset ls"}, []string{"keywords", "themes"}})
	step(jsonStep{d("dataset", "ls"), []string{"dataset ls"}, []string{"[].keywords", "[].media_types"}})
	// A node hosting nobody lists nobody: [] (TestHostedSiteCLI checks the rows).
	if out := step(jsonStep{d("host", "ls"), []string{"host ls"}, nil}); strings.TrimSpace(out) != "[]" {
		t.Errorf("host ls --json on a node hosting nobody: %s", out)
	}

	minutes := filepath.Join(work, "minutes.txt")
	step(jsonStep{d("put", minutes, "registry/2026/minutes.txt", "--meta", "author=riigikantselei", "--label", "NATO RESTRICTED"), append([]string{"put"}, obj...), nil})
	step(jsonStep{d("put", minutes, "registry/2026/plain.txt"), append([]string{"put"}, obj...), nil})
	step(jsonStep{d("get", "registry/2026/minutes.txt", filepath.Join(work, "out.txt")), append([]string{"get"}, obj...), nil})
	step(jsonStep{d("ls", "registry/"), []string{"ls"}, []string{"objects", "prefixes"}})
	if out := step(jsonStep{d("ls", "registry/nothing/"), []string{"ls"}, nil}); !strings.Contains(out, `"objects": []`) || !strings.Contains(out, `"prefixes": []`) {
		t.Errorf("ls --json of nothing:\n%s", out)
	}
	step(jsonStep{d("stat", "registry/2026/minutes.txt"), append([]string{"stat"}, obj...), []string{"shards"}})
	step(jsonStep{d("rm", "registry/2026/plain.txt"), []string{"rm"}, nil})
	step(jsonStep{d("versions", "registry/2026/"), []string{"versions"}, nil})
	if out := step(jsonStep{d("versions", "registry/nothing"), []string{"versions"}, nil}); strings.TrimSpace(out) != "[]" {
		t.Errorf("versions --json of nothing printed %s, want []", out)
	}
	step(jsonStep{d("audit", "log", "--kind", "object"), []string{"audit log"}, nil})
	step(jsonStep{d("audit", "verify"), []string{"audit verify"}, []string{"log.copies", "log.problems", "log.window", "state.problems", "witnesses", "descriptors", "problems", "window"}})
	step(jsonStep{d("audit", "key"), []string{"audit key"}, nil})
	if _, stderr, err := runCLI(t, "--dir", dir, "identity", "export", "-o", filepath.Join(work, "node.pub")); err != nil {
		t.Fatalf("identity export: %v\n%s", err, stderr)
	}
	if _, stderr, err := runCLI(t, "--dir", dir, "audit", "proof", "registry/2026/minutes.txt", "-o", filepath.Join(work, "minutes.proof")); err != nil {
		t.Fatalf("audit proof: %v\n%s", err, stderr)
	}
	step(jsonStep{[]string{"--json", "audit", "verify-proof", filepath.Join(work, "minutes.proof"), "--key", filepath.Join(work, "node.pub")}, []string{"audit verify-proof", "audit log"}, []string{"witnesses", "unverified_signatures"}})
	step(jsonStep{d("index", "rebuild"), []string{"index rebuild"}, []string{"site_errors", "unreadable"}})
	step(jsonStep{d("index", "adopt", "--all"), []string{"index adopt"}, []string{"adopted", "kept"}})
	step(jsonStep{d("index", "compact"), []string{"index compact"}, nil})
	// The identity, and its replacement (a development node: at once).
	step(jsonStep{d("identity"), []string{"identity"}, []string{"previous"}})
	out = step(jsonStep{d("identity", "replace"), []string{"identity replace"}, nil})
	var replaced struct {
		Statement string `json:"statement"`
	}
	json.Unmarshal([]byte(out), &replaced)
	step(jsonStep{d("identity", "verify-transition", replaced.Statement), []string{"identity verify-transition", "identity"}, nil})
	step(jsonStep{d("identity"), []string{"identity"}, []string{"previous"}})
	// config show, edit and restore.
	if out := step(jsonStep{d("config", "show"), []string{"config show"}, nil}); !strings.Contains(out, `"generation": `) {
		t.Errorf("config show --json:\n%s", out)
	}
	conf, _ := os.ReadFile(filepath.Join(dir, node.ConfigFile))
	os.WriteFile(filepath.Join(work, "proposed.yaml"), []byte(strings.Replace(string(conf), "  dev: true\n", "  dev: true\nlog:\n  level: warn\n", 1)), 0o600)
	if out := step(jsonStep{d("config", "edit", "--apply", filepath.Join(work, "proposed.yaml")), []string{"config edit"}, []string{"changes"}}); !strings.Contains(out, `"applied": true`) || !strings.Contains(out, `"gate": "free"`) {
		t.Errorf("config edit --json:\n%s", out)
	}
	step(jsonStep{d("config", "restore"), []string{"config restore"}, nil})
	step(jsonStep{d("key", "rotate", "registry"), []string{"key rotate"}, nil})
	step(jsonStep{d("key", "rotate-root"), []string{"key rotate-root", "key rotate"}, nil})
	step(jsonStep{d("scrub"), []string{"scrub"}, []string{"unrepairable", "errors"}})
	step(jsonStep{d("scrub", "--repair"), []string{"scrub"}, []string{"unrepairable", "errors"}})
	step(jsonStep{d("site", "drain", "est-3"), []string{"site drain", "scrub"}, []string{"sites", "scrub.unrepairable", "scrub.errors"}})
	step(jsonStep{d("drill", "--lose", "jurisdiction=EST"), []string{"drill"}, []string{"lost_sites", "vaults", "vaults[].lost", "policies_violated"}})
	step(jsonStep{[]string{"--dir", filepath.Join(work, "recovered"), "--json", "recover", "--from-dir", filepath.Join(sites, "lux-1"), "--key", filepath.Join(dir, "root.key")},
		[]string{"recover", "index rebuild"}, []string{"rebuild.site_errors", "rebuild.unreadable"}})
	step(jsonStep{[]string{"--json", "demo", "--size", "0"}, append([]string{"demo", "site add", "vault create", "index rebuild"}, obj...),
		[]string{"sites", "objects", "objects[].shards", "destroyed", "rebuild.unreadable"}})
	step(jsonStep{[]string{"--json", "version"}, []string{"version"}, nil})

	// A node whose root key is split between two custodians.
	cdir := filepath.Join(work, "custody")
	keys := filepath.Join(work, "keys")
	var pubArgs []string
	for _, name := range []string{"alice", "bob"} {
		k, err := custody.GenerateCustodian(name)
		if err != nil {
			t.Fatal(err)
		}
		priv, _ := k.MarshalPrivate()
		pub, _ := k.Public().MarshalPublic()
		os.MkdirAll(keys, 0o700)
		atomicfile.Write(filepath.Join(keys, name+".key"), priv, 0o600)
		atomicfile.Write(filepath.Join(keys, name+".pub"), pub, 0o644)
		pubArgs = append(pubArgs, "--custodian", filepath.Join(keys, name+".pub"))
	}
	cd := func(args ...string) []string { return append([]string{"--dir", cdir, "--json"}, args...) }
	shares := filepath.Join(work, "shares")
	step(jsonStep{cd(append([]string{"init", "--nation", "EST", "--shares-out", shares}, pubArgs...)...), []string{"init"}, []string{"shares"}})
	unseal := []string{"--unseal", filepath.Join(shares, "alice.share") + ":" + filepath.Join(keys, "alice.key"),
		"--unseal", filepath.Join(shares, "bob.share") + ":" + filepath.Join(keys, "bob.key")}
	for _, s := range []string{"est-1", "lux-1", "fin-1"} {
		step(jsonStep{cd(append(unseal, "site", "add", "c"+s, "--path", filepath.Join(work, "csites", s), "--jurisdiction", strings.ToUpper(s[:3]), "--provider", "gov-dc")...), []string{"site add"}, nil})
	}
	step(jsonStep{cd(append(unseal, "vault", "create", "empty", "--erasure", "1+1")...), []string{"vault create"}, nil})
	if _, stderr, err := runCLI(t, append(cd(unseal...), "vault", "rm", "empty")...); err == nil || !strings.Contains(stderr, "two-person approval required") {
		t.Fatalf("vault rm on a node with custodians: %v\n%s", err, stderr)
	}
	step(jsonStep{cd(append(unseal, "approve", "--offline", "--key", filepath.Join(keys, "alice.key"), firstRequest(t, cdir))...), []string{"approve, reject", "request ls"}, []string{"approvals"}})

	// Credentials of an administrative principal are a two-person change
	// through 'config edit'; the test, holding the shares, writes them.
	cn := unsealedNode(t, cdir, filepath.Join(shares, "alice.share"), filepath.Join(keys, "alice.key"), filepath.Join(shares, "bob.share"), filepath.Join(keys, "bob.key"))
	c2 := *cn.Config
	c2.S3.Credentials = []node.CredentialConfig{{Principal: "admin", AccessKey: "EMBTESTKEY", SecretKey: "test-secret-key"}}
	c2.S3.Address = freeAddr(t)
	if err := cn.SaveConfig(&c2); err != nil {
		t.Fatal(err)
	}
	cn.Close()
	srv := startServe(t, "--dir", cdir)
	alice := filepath.Join(keys, "alice.key")
	step(jsonStep{cd("status"), []string{"status"}, nil})
	step(jsonStep{cd("status", "--key", alice), []string{"status"}, []string{"unseal.shares_given"}})
	step(jsonStep{cd("request", "ls", "--key", alice), []string{"request ls"}, []string{"[].approvals"}})
	step(jsonStep{cd("unseal", "--share", filepath.Join(shares, "alice.share"), "--key", alice), []string{"unseal"}, []string{"shares_given"}})
	step(jsonStep{cd("unseal", "--share", filepath.Join(shares, "bob.share"), "--key", filepath.Join(keys, "bob.key")), []string{"unseal"}, []string{"shares_given"}})
	step(jsonStep{cd("status", "--key", alice), []string{"status"}, []string{"unseal.shares_given"}})
	t.Setenv("EMBASSY_ACCESS_KEY", "EMBTESTKEY")
	t.Setenv("EMBASSY_SECRET_KEY", "test-secret-key")
	step(jsonStep{cd("status"), []string{"status"}, []string{"unseal.shares_given"}})
	step(jsonStep{cd("reject", "--key", filepath.Join(keys, "bob.key"), firstRequest(t, cdir)), []string{"approve, reject", "request ls"}, []string{"approvals"}})
	step(jsonStep{cd("request", "ls"), []string{"request ls"}, []string{"[].approvals"}})
	srv.stop()
}

// firstRequest returns the id of the first two-person request in dir.
func firstRequest(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, node.RequestsFile))
	if err != nil {
		t.Fatal(err)
	}
	var rs []struct {
		ID string `json:"id"`
	}
	// The first JSON text; the second is the file's authenticator.
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(&rs); err != nil || len(rs) == 0 {
		t.Fatalf("%s: %v (%d requests)", node.RequestsFile, err, len(rs))
	}
	return rs[0].ID
}

// Every command section of docs/cli.md that shows a JSON form is run by
// TestJSONOutputs: a form documented but never checked would drift.
func TestJSONFormsAllChecked(t *testing.T) {
	b, err := os.ReadFile("json_test.go")
	if err != nil {
		t.Fatal(err)
	}
	src := string(b)
	docs, err := os.ReadFile(filepath.Join("..", "..", "docs", "cli.md"))
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	section := ""
	for line := range strings.SplitSeq(string(docs), "\n") {
		if h, ok := strings.CutPrefix(line, "### "); ok {
			section = h
		}
		if section != "" && strings.HasPrefix(line, "JSON") && !strings.Contains(src, `"`+section+`"`) {
			missing = append(missing, section)
		}
	}
	sort.Strings(missing)
	missing = slices.Compact(missing)
	if len(missing) > 0 {
		t.Errorf("docs/cli.md documents JSON forms that TestJSONOutputs does not run: %q", missing)
	}
}

// unsealedNode opens the node in dir and unseals it with share files and
// custodian key files given in pairs.
func unsealedNode(t *testing.T, dir string, shareKey ...string) *node.Node {
	t.Helper()
	n, err := node.Open(t.Context(), dir, node.NewLogger(node.LogConfig{Level: "error"}, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(shareKey); i += 2 {
		_, share, err := (&app{stdin: strings.NewReader(""), stderr: io.Discard}).openShare(shareKey[i], shareKey[i+1])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.Unseal(share); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.Ready(); err != nil {
		t.Fatal(err)
	}
	return n
}
