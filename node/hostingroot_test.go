package node

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/embassy-dev/embassy/site"
)

// TestHostingPathMistakes: the operator's mistakes with the hosting path
// ("half-mounted sites"). Hosting a guest needs a hosting directory that
// exists and is this node's: one that does not exist (a volume whose
// mount point was never made), or holds something else, or is another
// node's, or carries a marker damaged or forged, is refused, naming the
// path and what to check, and nothing is made in it or in its place. An
// empty directory, or a fresh filesystem's (lost+found only), is taken
// when nobody is hosted yet, and marked.
func TestHostingPathMistakes(t *testing.T) {
	lux, est, fin := newAllyNode(t, "LUX"), newAllyNode(t, "EST"), newAllyNode(t, "FIN")
	trust(t, lux, est)
	admin := lux.As(t.Context(), "admin")
	finMarker, err := encodeHostingMarker(fin.Keys(), fin.Config.Node.ID)
	if err != nil {
		t.Fatal(err)
	}
	// A marker naming LUX, signed by FIN's key.
	forged := append(hostingMarkerBody(lux.Config.Node.ID), "sig "...)
	forged = append(forged, finMarker[bytes.Index(finMarker, []byte("sig "))+4:]...)
	estID := est.Config.Node.ID
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T, path string) // path does not exist yet
		says    string                          // "": hosted
	}{
		{"a path that does not exist", func(*testing.T, string) {},
			"does not exist: is the hosting volume mounted? The node never creates this directory"},
		{"a file, not a directory", func(t *testing.T, p string) { write(t, p, "x") },
			"not a directory"},
		{"a directory of something else", func(t *testing.T, p string) { mkdir(t, p); write(t, filepath.Join(p, "notes.txt"), "x") },
			`has no hosting marker (.embassy-hosting) and holds "notes.txt", which is not a guest's store: it is not this node's hosting directory`},
		{"another node's hosting volume", func(t *testing.T, p string) {
			mkdir(t, p)
			write(t, filepath.Join(p, HostingMarkerFile), string(finMarker))
		}, "its hosting marker (.embassy-hosting) names node " + fin.Config.Node.ID + ": it is that node's hosting directory, not this one's: is the right volume mounted there?"},
		{"a forged marker", func(t *testing.T, p string) {
			mkdir(t, p)
			write(t, filepath.Join(p, HostingMarkerFile), string(forged))
		}, "names this node but is not signed by this node's key"},
		{"a damaged marker", func(t *testing.T, p string) {
			mkdir(t, p)
			write(t, filepath.Join(p, HostingMarkerFile), "embassy hosting marker v1\nnode "+lux.Config.Node.ID+"\n")
		}, "its hosting marker (.embassy-hosting) is damaged"},
		{"an empty directory", func(t *testing.T, p string) { mkdir(t, p) }, ""},
		{"a fresh filesystem", func(t *testing.T, p string) { mkdir(t, p); mkdir(t, filepath.Join(p, "lost+found")) }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "hosted")
			tc.prepare(t, path)
			before := tree(t, path)
			changeConfig(t, lux.Node, func(c *Config) {
				c.Alliance.Hosting = &HostingConfig{Path: path, Jurisdiction: "LUX", Provider: "lux-gov-dc", Control: "LUX"}
				c.Alliance.Guests = nil
			})
			_, err := lux.Host(admin, HostRequest{Peer: "EST", Quota: "1MiB"})
			if tc.says != "" {
				if err == nil || !strings.Contains(err.Error(), tc.says) || !strings.Contains(err.Error(), "hosting path "+path) {
					t.Fatalf("host add: %v, want an error naming %s and saying %q", err, path, tc.says)
				}
				if after := tree(t, path); !equalTrees(after, before) {
					t.Fatalf("the hosting path changed: %v, was %v", after, before)
				}
				if len(lux.Guests()) != 0 {
					t.Fatalf("hosted all the same: %+v", lux.Guests())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(filepath.Join(path, HostingMarkerFile))
			if err != nil || hostingMarkerVerdict(lux.Keys(), lux.Config.Node.ID, b) != "" {
				t.Fatalf("the hosting directory's marker: %v %q", err, b)
			}
			if _, err := os.Stat(filepath.Join(path, estID, "s")); err != nil {
				t.Fatalf("EST's store: %v", err)
			}
		})
	}
}

// TestHostingVolumeNotMounted: LUX hosts EST on a volume; then the volume
// is not mounted (an empty mount point in its place). A new guest is
// refused, naming the path, and nothing is made on the disk beneath;
// EST's store is unavailable (to EST, and in 'host ls', with the reason),
// not recreated; a volume mounted over the path while the node runs is
// noticed; once the volume is back, EST's blobs are all there and the new
// guest is hosted on it. A hosting directory made before markers (EST's
// store and no marker) keeps working and is marked on first use.
func TestHostingVolumeNotMounted(t *testing.T) {
	h := newHostingPair(t, "1MiB")
	fin := newAllyNode(t, "FIN")
	trust(t, h.lux, fin)
	lux, admin := h.lux, h.lux.As(t.Context(), "admin")
	vol := filepath.Dir(h.root)
	blob := []byte("EST's sealed shard")
	s := h.site()
	if err := s.Put(t.Context(), "s/aa/shard", bytes.NewReader(blob), int64(len(blob))); err != nil {
		t.Fatal(err)
	}
	stillThere := func(what string) { t.Helper(); readsShard(t, s, what, blob) }
	stillThere("mounted")

	// Unmounted: the mount point is there, empty.
	if err := os.Rename(vol, vol+".volume"); err != nil {
		t.Fatal(err)
	}
	mkdir(t, vol)
	if _, err := lux.Host(admin, HostRequest{Peer: "FIN", Quota: "1MiB"}); err == nil ||
		!strings.Contains(err.Error(), "hosting path "+vol+" is empty and has no hosting marker (.embassy-hosting), yet this node hosts a guest whose store lives there: is the hosting volume mounted?") {
		t.Fatalf("a guest added while the volume is not mounted: %v", err)
	}
	// Another, fresh filesystem mounted there (its lost+found only): the
	// message says what is there rather than "empty".
	mkdir(t, filepath.Join(vol, "lost+found"))
	if _, err := lux.Host(admin, HostRequest{Peer: "FIN", Quota: "1MiB"}); err == nil ||
		!strings.Contains(err.Error(), "hosting path "+vol+" holds no guest's store (only lost+found) and has no hosting marker (.embassy-hosting), yet this node hosts a guest whose store lives there") {
		t.Fatalf("a guest added while a fresh filesystem is mounted in the volume's place: %v", err)
	}
	if err := os.Remove(filepath.Join(vol, "lost+found")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(t.Context(), "s/aa/shard"); !errors.Is(err, site.ErrUnavailable) {
		t.Fatalf("EST's store with the volume not mounted: %v", err)
	}
	if err := s.Put(t.Context(), "s/aa/other", bytes.NewReader(blob), int64(len(blob))); !errors.Is(err, site.ErrUnavailable) {
		t.Fatalf("a put with the volume not mounted: %v", err)
	}
	rows, err := lux.HostUsage(t.Context())
	if err != nil || len(rows) != 1 || rows[0].Unavailable != 1 || len(rows[0].Why) != 1 || !strings.Contains(rows[0].Why[0], "hosting path "+vol+" is empty") {
		t.Fatalf("host ls with the volume not mounted: %+v %v", rows, err)
	}
	if after := tree(t, vol); len(after) != 1 {
		t.Fatalf("made on the disk beneath the volume: %v", after)
	}
	// A node starting to serve says so in its log at once.
	var logged bytes.Buffer
	log := lux.Log
	lux.Log = NewLogger(LogConfig{Level: "info"}, &logged)
	lux.checkHostedStores(t.Context())
	lux.Log = log
	if !strings.Contains(logged.String(), "a guest's hosted store cannot be used") || !strings.Contains(logged.String(), "hosting path "+vol+" is empty") {
		t.Fatalf("the log at start with the volume not mounted:\n%s", logged.String())
	}

	// Mounted again, over the path, while the node runs.
	if err := os.Remove(vol); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(vol+".volume", vol); err != nil {
		t.Fatal(err)
	}
	stillThere("mounted again")
	if _, err := lux.Host(admin, HostRequest{Peer: "FIN", Quota: "1MiB"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(vol, fin.Config.Node.ID, "s")); err != nil {
		t.Fatalf("FIN's store: %v", err)
	}

	// Swapped for an empty directory while EST's store is open: the node
	// notices the directory changed, and looks again.
	if err := os.Rename(vol, vol+".volume"); err != nil {
		t.Fatal(err)
	}
	mkdir(t, vol)
	if _, err := s.Stat(t.Context(), "s/aa/shard"); !errors.Is(err, site.ErrUnavailable) {
		t.Fatalf("EST's store after the volume went: %v", err)
	}
	if _, err := lux.guestStoreOf(t.Context(), h.est.Config.Node.ID); err == nil || !strings.Contains(err.Error(), "is the hosting volume mounted?") {
		t.Fatalf("EST's store after the volume went: %v", err)
	}
	os.Remove(vol)
	if err := os.Rename(vol+".volume", vol); err != nil {
		t.Fatal(err)
	}

	// Made before markers: EST's and FIN's stores, no marker. It is used,
	// and marked.
	if err := os.Remove(filepath.Join(vol, HostingMarkerFile)); err != nil {
		t.Fatal(err)
	}
	lux.host.mu.Lock()
	lux.host.stores = nil
	lux.host.mu.Unlock()
	stillThere("before markers")
	if b, err := os.ReadFile(filepath.Join(vol, HostingMarkerFile)); err != nil || hostingMarkerVerdict(lux.Keys(), lux.Config.Node.ID, b) != "" {
		t.Fatalf("the marker after first use: %v %q", err, b)
	}
}

// TestHostingMarker: the marker's encoding is strict, and only this
// node's key makes one this node accepts.
func TestHostingMarker(t *testing.T) {
	lux, fin := newAllyNode(t, "LUX"), newAllyNode(t, "FIN")
	id := lux.Config.Node.ID
	b, err := encodeHostingMarker(lux.Keys(), id)
	if err != nil {
		t.Fatal(err)
	}
	if why := hostingMarkerVerdict(lux.Keys(), id, b); why != "" {
		t.Fatal(why)
	}
	finB, _ := encodeHostingMarker(fin.Keys(), id) // names LUX, FIN's key
	sig := b[bytes.Index(b, []byte("sig "))+4 : len(b)-1]
	for _, tc := range []struct {
		name string
		b    []byte
		says string
	}{
		{"another node's", mustMarker(t, fin), "names node " + fin.Config.Node.ID},
		{"another key's", finB, "not signed by this node's key"},
		{"empty", nil, "damaged"},
		{"a trailing line", append(bytes.Clone(b), "more\n"...), "damaged"},
		{"no final newline", b[:len(b)-1], "damaged"},
		{"an empty last line", bytes.Replace(b, sig, append(bytes.Clone(sig), '\n'), 1), "damaged"},
		{"base64 not strict", bytes.Replace(b, sig, append(bytes.Clone(sig[:len(sig)-4]), "===="...), 1), "damaged"},
		{"not a node id", bytes.Replace(b, []byte("node "+id), []byte("node ../x"), 1), "damaged"},
		{"a site marker", []byte("embassy site marker v1\nnode " + id + "\nsite a\nsig " + base64.StdEncoding.EncodeToString([]byte("x")) + "\n"), "damaged"},
		{"huge", bytes.Repeat([]byte("a"), maxHostingMarker+1), "damaged"},
	} {
		if why := hostingMarkerVerdict(lux.Keys(), id, tc.b); !strings.Contains(why, tc.says) {
			t.Errorf("%s: %q, want %q", tc.name, why, tc.says)
		}
	}
}

// TestHostingMarkerWrittenMeanwhile: writeHostingMarker makes the marker
// once: one that appeared since the directory was found without one
// (another claim of the same directory) is kept as it is, accepted when
// it is this node's and refused, naming whose it is, when not; nothing
// else is left in the directory.
func TestHostingMarkerWrittenMeanwhile(t *testing.T) {
	lux, fin := newAllyNode(t, "LUX"), newAllyNode(t, "FIN")
	id := lux.Config.Node.ID
	// Signatures are randomised: each marker is made once.
	luxMarker, finMarker := mustMarker(t, lux), mustMarker(t, fin)
	for _, tc := range []struct {
		name   string
		there  []byte // the marker found, nil for none
		says   string // "": written or accepted
		marker []byte // what the directory holds after, nil: the one written
	}{
		{"none", nil, "", nil},
		{"this node's", luxMarker, "", luxMarker},
		{"another node's", finMarker, "names node " + fin.Config.Node.ID, finMarker},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := t.TempDir()
			if tc.there != nil {
				write(t, filepath.Join(p, HostingMarkerFile), string(tc.there))
			}
			r, err := os.OpenRoot(p)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			err = writeHostingMarker(lux.Keys(), r, p, id)
			if tc.says == "" && err != nil || tc.says != "" && (err == nil || !strings.Contains(err.Error(), tc.says)) {
				t.Fatalf("writeHostingMarker: %v, want %q", err, tc.says)
			}
			got := tree(t, p)
			b := got[HostingMarkerFile]
			if tc.marker != nil && b != string(tc.marker) {
				t.Errorf("the marker became %q, want %q", b, tc.marker)
			}
			if tc.marker == nil && hostingMarkerVerdict(lux.Keys(), id, []byte(b)) != "" {
				t.Errorf("the marker written is not this node's: %q", b)
			}
			if len(got) != 2 {
				t.Errorf("the directory holds %v, want only its marker", got)
			}
		})
	}
}

func mustMarker(t *testing.T, n *allyNode) []byte {
	t.Helper()
	b, err := encodeHostingMarker(n.Keys(), n.Config.Node.ID)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mkdir(t *testing.T, p string) {
	t.Helper()
	if err := os.Mkdir(p, 0o700); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// tree lists the paths under p, p included, with their file contents
// ("" for a directory); nil when p does not exist. A file that goes
// between the listing and its reading is left out: a live node directory
// holds the audit log's temporary files, renamed away as it writes.
func tree(t *testing.T, p string) map[string]string {
	t.Helper()
	if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	out := map[string]string{}
	err := filepath.WalkDir(p, func(q string, d os.DirEntry, err error) error {
		if errors.Is(err, os.ErrNotExist) && q != p {
			return nil
		}
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(p, q)
		if d.IsDir() {
			out[rel+"/"] = ""
			return nil
		}
		b, err := os.ReadFile(q)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		out[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func equalTrees(a, b map[string]string) bool {
	if (a == nil) != (b == nil) || len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// FuzzHostingMarker: the marker is read from a volume, outside input.
// Parsing never panics, and accepts only the canonical encoding of what
// it returns.
func FuzzHostingMarker(f *testing.F) {
	f.Add([]byte("embassy hosting marker v1\nnode 509bf35380feb60f\nsig AAAA\n"))
	f.Add([]byte("embassy hosting marker v1\nnode 509bf35380feb60f\n"))
	f.Add([]byte("embassy hosting marker v1\nnode \nsig \n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		id, sig, err := parseHostingMarker(b)
		if err != nil {
			return
		}
		want := append(hostingMarkerBody(id), "sig "...)
		want = base64.StdEncoding.AppendEncode(want, sig)
		want = append(want, '\n')
		if !validNodeID(id) || len(sig) == 0 || !bytes.Equal(want, b) {
			t.Fatalf("accepted %q as node %q, sig %x", b, id, sig)
		}
	})
}

// TestHostingRootWhileUnsealing: the hosting directory's check runs while
// the node's keys change (as an unseal sets them, under the seal lock the
// check does not take; Serve's peer listener waits for the unseal, but
// the check does not rely on that). It reads them through Keys, the one
// accessor; under -race, a Keys that read them unsynchronised fails here
// (checked by making it a plain field once). The check passes with and
// without keys (a sealed node reads the marker unverified), and a guest's
// put through the real peer link lands meanwhile.
func TestHostingRootWhileUnsealing(t *testing.T) {
	h := newHostingPair(t, "1MiB")
	lux := h.lux.Node
	keys := lux.Keys()
	if keys == nil {
		t.Fatal("an opened node has no keys")
	}
	root := lux.conf().Alliance.Hosting.Path
	guests := lux.conf().Alliance.Guests
	done := make(chan struct{})
	var checks atomic.Int64
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		for {
			select {
			case <-done:
				return
			default:
			}
			r, err := lux.openHostingRoot(root, guests, false)
			if err != nil {
				t.Errorf("hosting root while the keys change: %v", err)
				return
			}
			r.Close()
			checks.Add(1)
		}
	}()
	// Each change of the keys waits for one more check than before.
	await := func(n int64) {
		for checks.Load() < n {
			select {
			case <-exited:
				t.Fatalf("the checks stopped after %d", checks.Load())
			default:
				runtime.Gosched()
			}
		}
	}
	s := h.site()
	for range 20 {
		lux.setKeys(nil) // sealed
		await(checks.Load() + 1)
		lux.setKeys(keys) // unsealed
		await(checks.Load() + 1)
	}
	body := []byte("put while the host's keys changed")
	if err := s.Put(t.Context(), "s/aa/while-unsealing", bytes.NewReader(body), int64(len(body))); err != nil {
		t.Fatalf("guest's put: %v", err)
	}
	close(done)
	<-exited
	if lux.Keys() != keys {
		t.Error("Keys does not return the keys set last")
	}
}

// TestHostingMarkerLeftover: a crash while the hosting marker was written
// (atomicfile.CreateIn) leaves its temporary file in the hosting
// directory. The node recognises it by its exact name, removes it (and
// says so), and serves the guests: whether the marker was linked beside
// it or not (then the marker is written again). A file of a similar name,
// or an entry of the exact name that is not a regular file, is not the
// node's: a directory holding one and no marker is still refused, naming
// it, and nothing is removed, with or without a marker.
func TestHostingMarkerLeftover(t *testing.T) {
	h := newHostingPair(t, "1MiB")
	lux := h.lux
	vol := filepath.Dir(h.root)
	markerPath := filepath.Join(vol, HostingMarkerFile)
	marker, err := os.ReadFile(markerPath)
	if err != nil {
		t.Fatal(err)
	}
	blob := []byte("EST's sealed shard")
	s := h.site()
	if err := s.Put(t.Context(), "s/aa/shard", bytes.NewReader(blob), int64(len(blob))); err != nil {
		t.Fatal(err)
	}
	// reopen makes the node open the guest's store again, as at a start.
	reopen := func() {
		lux.host.mu.Lock()
		lux.host.stores = nil
		lux.host.mu.Unlock()
	}
	serves := func(what string) { t.Helper(); readsShard(t, s, what, blob) }
	gone := func(what, p string) {
		t.Helper()
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s: %s is still there (%v)", what, filepath.Base(p), err)
		}
	}
	const leftover = "..embassy-hosting.tmp0123456789abcdef"

	// The marker linked, its temporary file not yet removed: the guest's
	// next request, once the store is opened again, finds it removed.
	write(t, filepath.Join(vol, leftover), string(marker))
	reopen()
	serves("a leftover beside the marker")
	gone("a leftover beside the marker", filepath.Join(vol, leftover))
	if b, err := os.ReadFile(markerPath); err != nil || !bytes.Equal(b, marker) {
		t.Fatalf("the marker after its leftover was removed: %v %q", err, b)
	}

	// The crash came before the link: no marker, a part of one in its
	// temporary file. The node starting to serve removes it, says so,
	// and marks the directory again.
	if err := os.Remove(markerPath); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(vol, leftover), string(marker[:10]))
	reopen()
	var logged bytes.Buffer
	log := lux.Log
	lux.Log = NewLogger(LogConfig{Level: "info"}, &logged)
	lux.checkHostedStores(t.Context())
	lux.Log = log
	if !strings.Contains(logged.String(), "removed the leftover of an unfinished write of the hosting marker") || !strings.Contains(logged.String(), leftover) ||
		strings.Contains(logged.String(), "cannot be used") {
		t.Fatalf("the log at start with a leftover and no marker:\n%s", logged.String())
	}
	gone("a leftover and no marker", filepath.Join(vol, leftover))
	if b, err := os.ReadFile(markerPath); err != nil || hostingMarkerVerdict(nil, lux.Config.Node.ID, b) != "" {
		t.Fatalf("the marker written again: %v %q", err, b)
	}
	serves("a leftover and no marker")
	marker, _ = os.ReadFile(markerPath)

	// Not the node's: kept, and refused where there is no marker.
	similar := map[string]func(p string){}
	for _, name := range []string{
		"..embassy-hosting.tmp0123456789abcde",
		"..embassy-hosting.tmp0123456789ABCDEF",
		"..embassy-hosting.tmp0123456789abcdef0",
		".embassy-hosting.tmp0123456789abcdef",
		"..embassy-hosting.tmp",
	} {
		similar[name] = func(p string) { write(t, p, "x") }
	}
	similar[leftover+" (a directory)"] = func(p string) { mkdir(t, filepath.Join(filepath.Dir(p), leftover)) }
	similar[leftover+" (a symlink)"] = func(p string) {
		if err := os.Symlink("/nowhere", filepath.Join(filepath.Dir(p), leftover)); err != nil {
			t.Fatal(err)
		}
	}
	for desc, make := range similar {
		name, _, _ := strings.Cut(desc, " ")
		p := filepath.Join(vol, name)
		for _, withMarker := range []bool{false, true} {
			if !withMarker {
				os.Remove(markerPath)
			}
			make(p)
			reopen()
			_, err := lux.guestStoreOf(t.Context(), h.est.Config.Node.ID)
			if withMarker {
				if err != nil {
					t.Fatalf("%s beside the marker: %v", desc, err)
				}
				serves(desc + " beside the marker")
			} else {
				if want := `hosting path ` + vol + ` has no hosting marker (.embassy-hosting) and holds "` + name + `", which is not a guest's store`; err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("%s and no marker: %v, want %q", desc, err, want)
				}
				if _, err := os.Lstat(markerPath); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("%s and no marker: a marker was written (%v)", desc, err)
				}
			}
			if _, err := os.Lstat(p); err != nil {
				t.Fatalf("%s (marker: %v) was removed: %v", desc, withMarker, err)
			}
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			if !withMarker {
				write(t, markerPath, string(marker))
			}
		}
	}
}

// readsShard fails the test unless the guest's blob s/aa/shard reads back
// as blob through s (what says when).
func readsShard(t *testing.T, s site.Site, what string, blob []byte) {
	t.Helper()
	rc, err := s.Get(t.Context(), "s/aa/shard", 0, -1)
	if err != nil {
		t.Fatalf("%s: EST reads its blob: %v", what, err)
	}
	defer rc.Close()
	var b bytes.Buffer
	b.ReadFrom(rc)
	if !bytes.Equal(b.Bytes(), blob) {
		t.Fatalf("%s: EST's blob reads %q", what, b.Bytes())
	}
}
