package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/embassy-dev/embassy/audit"
	"github.com/embassy-dev/embassy/custody"
	"github.com/embassy-dev/embassy/federation"
	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/vault"
)

// withReplicaVault gives n a vault for allies' replicas, named in
// alliance.replica_vault.
func withReplicaVault(t *testing.T, n *allyNode) {
	t.Helper()
	if err := n.AddVault(VaultConfig{Name: "replicas", Erasure: "4+2", Survive: "jurisdictions=1"}); err != nil {
		t.Fatal(err)
	}
	c := *n.conf()
	c.Alliance.ReplicaVault = "replicas"
	if err := n.SaveConfig(&c); err != nil {
		t.Fatal(err)
	}
}

// syncLog waits until every site of n holds n's whole audit log.
func syncLog(t *testing.T, n *Node) {
	t.Helper()
	l := n.Audit()
	if err := l.Sync(t.Context(), l.Appended(), n.Engine.SiteIDs()); err != nil {
		t.Fatal(err)
	}
}

// pull pulls n's replicas and fails on any grant's error.
func pull(t *testing.T, n *Node, o ReplicaPullOptions) []ReplicaPull {
	t.Helper()
	reps, err := n.PullReplicas(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range reps {
		if r.Error != "" {
			t.Fatalf("pull of grant %s from %s: %s", r.Grant, r.Owner, r.Error)
		}
	}
	return reps
}

// replicaKeys lists every object key of n's replica vault.
func replicaKeys(t *testing.T, n *Node) []string {
	t.Helper()
	var out []string
	o := index.ListOptions{Max: 1000}
	for {
		page, err := n.Engine.List(vault.AsSystem(t.Context()), "replicas", o)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page.Entries {
			out = append(out, e.Key)
		}
		if !page.Truncated {
			return out
		}
		o.After = page.Next
	}
}

func hasKeyWith(keys []string, sub string) bool {
	for _, k := range keys {
		if strings.Contains(k, sub) {
			return true
		}
	}
	return false
}

// TestReplicateAndRecoverFromAnAlly: EST grants LUX a replicate grant on
// its registry vault; LUX pulls it by cursor (an interrupted pull goes on
// from its cursor) and holds ciphertext only; a deletion at EST reaches
// LUX only as a signed deletion record, forged ones are refused, and a
// LUX restored from a backup does not bring a deleted version back. Then
// EST loses its node directory and every site it controls, and `recover
// --from-peer` (RecoverFromPeer) brings back the node — its identity
// included — and every replicated version byte for byte; the recovered
// log accounts for every version, and audit verify passes.
func TestReplicateAndRecoverFromAnAlly(t *testing.T) {
	est, lux := newAllyNode(t, "EST"), newAllyNode(t, "LUX")
	ctx := context.Background()
	trust(t, est, lux)
	trust(t, lux, est)
	withReplicaVault(t, lux)

	big := make([]byte, 2<<20+4321)
	rand.Read(big)
	objects := map[string][]byte{
		"2026/census.bin":  big,
		"2026/note.txt":    []byte("small and inline"),
		"2026/parcels.csv": []byte("id,area\n1,300\n2,450\n"),
		"land/map.geojson": []byte(`{"type":"FeatureCollection","features":[]}`),
		"2026/doomed.txt":  []byte("deleted before the disaster"),
	}
	versions := map[string]manifest.ID{}
	for _, k := range []string{"2026/census.bin", "2026/note.txt", "2026/parcels.csv", "land/map.geojson", "2026/doomed.txt"} {
		info, err := est.Engine.Put(est.As(ctx, "officer"), "registry", k, bytes.NewReader(objects[k]), vault.PutOptions{Size: int64(len(objects[k])), Label: "NATO SECRET//REL TO EST"})
		if err != nil {
			t.Fatalf("put %s: %v", k, err)
		}
		versions[k] = info.VersionID
	}
	// A read grant is not a replicate grant: LUX cannot pull under it.
	rg, err := est.Grant(est.As(ctx, "admin"), GrantRequest{Scope: "registry", To: "LUX", Level: "read", Ceiling: "NATO SECRET", Expires: "30d"})
	if err != nil {
		t.Fatal(err)
	}
	err = lux.CallPeer(t.Context(), est.Config.Node.ID, federation.EndpointReplicate, federation.ReplicateRequest{Grant: rg.ID}, nil)
	var pe *PeerError
	if !errors.As(err, &pe) || pe.Code != "not_granted" {
		t.Fatalf("replicate under a read grant: %v, want not_granted", err)
	}
	g, err := est.Grant(est.As(ctx, "admin"), GrantRequest{Scope: "registry", To: "LUX", Level: "replicate", Ceiling: "NATO SECRET", Expires: "365d"})
	if err != nil {
		t.Fatal(err)
	}
	syncLog(t, est.Node)

	t.Run("an interrupted pull goes on from its cursor", func(t *testing.T) {
		reps := pull(t, lux.Node, ReplicaPullOptions{PageSize: 2, MaxPages: 1})
		if len(reps) != 1 || reps[0].Versions != 2 || reps[0].Done || reps[0].Cursor == 0 {
			t.Fatalf("first, stopped pull: %+v", reps)
		}
		first := reps[0].Cursor
		reps = pull(t, lux.Node, ReplicaPullOptions{})
		if reps[0].From != first || !reps[0].Done || reps[0].Versions != len(objects)-2 {
			t.Fatalf("second pull: %+v, want from %d to the end with %d versions", reps[0], first, len(objects)-2)
		}
		// EST's log shows the second page served from the first's cursor.
		var afters []string
		est.Audit().Events(t.Context(), 0, func(_ uint64, e audit.Event) error {
			if e.Kind == KindShareReplicate {
				afters = append(afters, e.Detail["after"])
			}
			return nil
		})
		if len(afters) != 2 || afters[0] != "0" || afters[1] != strconv.FormatUint(first, 10) {
			t.Errorf("EST served pages from %v, want [0 %d]", afters, first)
		}
	})

	t.Run("LUX holds ciphertext only", func(t *testing.T) {
		keys := replicaKeys(t, lux.Node)
		owner := est.Config.Node.ID
		for name := range objects {
			if hasKeyWith(keys, name) || hasKeyWith(keys, strings.Split(name, "/")[1]) {
				t.Errorf("a replica key names EST's object %s: %v", name, keys)
			}
		}
		for _, want := range []string{owner + "/node/descriptor", owner + "/log/checkpoint", owner + "/state", owner + "/v/" + versions["2026/census.bin"].String()} {
			if !hasKeyWith(keys, want) {
				t.Errorf("the replica lacks %s", want)
			}
		}
		// Each replicated blob is EST's blob as EST wrote it.
		checked := 0
		for _, k := range keys {
			rest, ok := strings.CutPrefix(k, owner+"/b/")
			if !ok || strings.HasSuffix(k, "/node/marker") {
				continue
			}
			sid, name, _ := strings.Cut(rest, "/")
			s, _ := est.Engine.Site(sid)
			rc, err := s.Store.Get(t.Context(), name, 0, -1)
			if err != nil {
				t.Fatalf("EST site %s blob %s: %v", sid, name, err)
			}
			want, _ := io.ReadAll(rc)
			rc.Close()
			got, err := lux.replicaObject(t.Context(), "replicas", k)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("replica %s: %d bytes (%v), EST's blob %d bytes", k, len(got), err, len(want))
			}
			// LUX cannot open a manifest copy: it holds no key of EST's.
			if strings.HasPrefix(name, manifest.ManifestPrefix) {
				if _, err := lux.Engine.OpenEnvelope(got); err == nil {
					t.Errorf("LUX opened EST's manifest %s", name)
				}
			}
			checked++
		}
		if checked < 10 {
			t.Errorf("only %d blobs compared", checked)
		}
		for _, big := range [][]byte{big[:64], big[1<<20 : 1<<20+64], objects["2026/parcels.csv"]} {
			for _, k := range keys {
				if b, err := lux.replicaObject(t.Context(), "replicas", k); err == nil && bytes.Contains(b, big) {
					t.Fatalf("plaintext in LUX's replica object %s", k)
				}
			}
		}
		usage, err := lux.replicaUsage(t.Context())
		if err != nil || len(usage) != 1 || usage[0].Node != owner || usage[0].Nation != "EST" || usage[0].Kind != "replica" || usage[0].Bytes < int64(len(big)) || usage[0].Blobs < 10 {
			t.Errorf("replica usage: %+v %v", usage, err)
		}
	})

	doomed := versions["2026/doomed.txt"]
	owner := est.Config.Node.ID
	t.Run("a deletion arrives as a signed deletion record", func(t *testing.T) {
		// A backup of LUX's replica of the doomed version, taken now.
		backup := map[string][]byte{}
		for _, k := range replicaKeys(t, lux.Node) {
			if strings.Contains(k, "/state") || strings.Contains(k, "/v/"+doomed.String()) || strings.HasPrefix(k, owner+"/b/") {
				b, err := lux.replicaObject(t.Context(), "replicas", k)
				if err != nil {
					t.Fatal(err)
				}
				backup[k] = b
			}
		}
		if _, err := est.Engine.Delete(est.As(ctx, "officer"), "registry", "2026/doomed.txt", vault.DeleteOptions{VersionID: doomed}); err != nil {
			t.Fatal(err)
		}
		syncLog(t, est.Node)
		doomedBlobs := func() int {
			b, err := lux.replicaObject(t.Context(), "replicas", owner+"/v/"+doomed.String())
			if err != nil {
				return 0
			}
			return bytes.Count(b, []byte(`"site"`))
		}
		held := doomedBlobs()
		if held == 0 {
			t.Fatal("LUX did not hold the doomed version")
		}
		reps := pull(t, lux.Node, ReplicaPullOptions{})
		if reps[0].Deletions != 1 {
			t.Fatalf("pull after the delete: %+v", reps[0])
		}
		keys := replicaKeys(t, lux.Node)
		if hasKeyWith(keys, "/v/"+doomed.String()) || !hasKeyWith(keys, "/d/"+doomed.String()) {
			t.Fatalf("after the deletion record: %v", keys)
		}
		rec, _ := lux.replicaObject(t.Context(), "replicas", owner+"/d/"+doomed.String())
		d, err := federation.ParseDeletion(rec, est.Keys().Identity().Public())
		if err != nil || d.Version != doomed.String() || d.Grant != g.ID {
			t.Fatalf("the kept deletion record: %+v %v", d, err)
		}

		// Forged records are refused and remove nothing.
		estPeer, _ := lux.peer(owner)
		gg, _ := federation.ParseGrant([]byte(g.Signed), est.Keys().Identity().Public())
		keep := versions["2026/note.txt"].String()
		forge := func(d federation.Deletion, sign func([]byte) ([]byte, error)) federation.ReplicaEntry {
			fd, err := federation.SignDeletion(d, sign)
			if err != nil {
				t.Fatal(err)
			}
			return federation.ReplicaEntry{Index: d.LogIndex, Deletion: string(fd.Raw)}
		}
		otherKeys, err := custody.GenerateRootKey()
		if err != nil {
			t.Fatal(err)
		}
		kr, _ := custody.NewKeyring(otherKeys)
		id, _ := custody.NewIdentity("forger1")
		kr = kr.WithIdentity(id)
		genuine := federation.Deletion{Owner: owner, Grant: g.ID, Version: keep, LogIndex: 7, Deleted: time.Now()}
		altered := forge(genuine, est.Keys().SignHybrid)
		altered.Deletion = strings.Replace(altered.Deletion, "log-index 7", "log-index 8", 1)
		altered.Index = 8
		otherGrant := genuine
		otherGrant.Grant = rg.ID
		for name, e := range map[string]federation.ReplicaEntry{
			"signed by another key": forge(genuine, kr.SignHybrid),
			"signed by LUX itself":  forge(genuine, lux.Keys().SignHybrid),
			"altered after signing": altered,
			"of another grant":      forge(otherGrant, est.Keys().SignHybrid),
			"at another log entry":  {Index: 9, Deletion: forge(genuine, est.Keys().SignHybrid).Deletion},
			"not a record":          {Index: 7, Deletion: "embassy deletion v1\nowner x\n"},
		} {
			err := lux.applyDeletion(t.Context(), "replicas", estPeer, gg, e)
			if !errors.Is(err, ErrDeletionRefused) {
				t.Errorf("%s: %v, want ErrDeletionRefused", name, err)
			}
		}
		if !hasKeyWith(replicaKeys(t, lux.Node), "/v/"+keep) || hasKeyWith(replicaKeys(t, lux.Node), "/d/"+keep) {
			t.Fatal("a forged deletion record removed a version")
		}
		if auditKinds(t, lux.Node)[KindReplicaRefused] < 6 {
			t.Errorf("refusals not on LUX's log: %v", auditKinds(t, lux.Node))
		}

		// LUX restored from the backup: the doomed version's blobs and the
		// old cursor are back, the deletion record is not. The next pull
		// removes them again, on EST's record.
		if err := lux.deleteReplicaObject(t.Context(), "replicas", owner+"/d/"+doomed.String()); err != nil {
			t.Fatal(err)
		}
		for k, b := range backup {
			if err := lux.putReplicaObject(t.Context(), "replicas", k, b); err != nil {
				t.Fatal(err)
			}
		}
		if doomedBlobs() != held {
			t.Fatal("the backup did not bring the doomed version back")
		}
		reps = pull(t, lux.Node, ReplicaPullOptions{})
		if reps[0].Deletions != 1 {
			t.Fatalf("pull after the restore: %+v", reps[0])
		}
		keys = replicaKeys(t, lux.Node)
		if hasKeyWith(keys, "/v/"+doomed.String()) || !hasKeyWith(keys, "/d/"+doomed.String()) {
			t.Fatalf("after the restored LUX pulled: %v", keys)
		}
		b, _ := lux.replicaObject(t.Context(), "replicas", owner+"/v/"+versions["2026/census.bin"].String())
		if !bytes.Contains(b, []byte(`"site"`)) {
			t.Fatal("the census version's blob list is gone")
		}
	})

	t.Run("recover from the ally", func(t *testing.T) {
		// One more write and a last pull before the disaster.
		info, err := est.Engine.Put(est.As(ctx, "officer"), "registry", "2026/late.txt", strings.NewReader("written last"), vault.PutOptions{Size: 12})
		if err != nil {
			t.Fatal(err)
		}
		objects["2026/late.txt"], versions["2026/late.txt"] = []byte("written last"), info.VersionID
		delete(objects, "2026/doomed.txt")
		syncLog(t, est.Node)
		pull(t, lux.Node, ReplicaPullOptions{})
		_, estFP := est.card(t)
		identity := est.Keys().Identity().Public().Ed25519Fingerprint()
		root, err := custody.ReadKeyFile(filepath.Join(est.Dir, "root.key"))
		if err != nil {
			t.Fatal(err)
		}
		luxCard, luxFP := lux.card(t)

		// The disaster: EST's node directory and every site it controls.
		est.stop()
		est.Close()
		estSites := filepath.Join(est.Dir, "..", "est-sites")
		for _, p := range []string{est.Dir, estSites} {
			if err := os.RemoveAll(p); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := os.Stat(estSites); !errors.Is(err, os.ErrNotExist) {
			t.Fatal("EST's sites survived")
		}

		// A wrong fingerprint for LUX's card is refused before anything.
		dir := filepath.Join(t.TempDir(), "est-again")
		if _, _, _, err := RecoverFromPeer(t.Context(), RecoverFromPeerOptions{RecoverOptions: RecoverOptions{Dir: dir, RootKey: &root}, Card: luxCard, Fingerprint: estFP}); !errors.Is(err, ErrFingerprint) {
			t.Fatalf("wrong fingerprint: %v", err)
		}
		// Another root key is not EST's: LUX refuses its key at the handshake.
		other, _ := custody.GenerateRootKey()
		if _, _, _, err := RecoverFromPeer(t.Context(), RecoverFromPeerOptions{RecoverOptions: RecoverOptions{Dir: dir, RootKey: &other}, Card: luxCard}); err == nil {
			t.Fatal("a stranger's root key recovered from LUX")
		}
		// What the ally keeps is outside input: a shard blob of its replica
		// grown by 64 KiB (listed and sent so), and a shard blob no
		// manifest names, listed at 64 KiB. Neither is written to EST's
		// sites: the shard blobs come back as their manifests give them
		// (before, both were written at the size listed).
		var grown, madeUp federation.BlobRef
		for _, k := range replicaKeys(t, lux.Node) {
			rest, ok := strings.CutPrefix(k, owner+"/b/")
			sid, name, _ := strings.Cut(rest, "/")
			if !ok || !strings.HasPrefix(name, manifest.ShardPrefix) {
				continue
			}
			b, err := lux.replicaObject(t.Context(), "replicas", k)
			if err != nil {
				t.Fatal(err)
			}
			if err := lux.putReplicaObject(t.Context(), "replicas", k, append(b, make([]byte, 64<<10)...)); err != nil {
				t.Fatal(err)
			}
			grown = federation.BlobRef{Site: sid, Name: name}
			madeUp = federation.BlobRef{Site: sid, Name: "s/ff/ff000000000000000000000000000000.0"}
			if err := lux.putReplicaObject(t.Context(), "replicas", owner+"/b/"+sid+"/"+madeUp.Name, make([]byte, 64<<10)); err != nil {
				t.Fatal(err)
			}
			break
		}
		if grown.Name == "" {
			t.Fatal("LUX holds no shard blob of EST's")
		}

		// A recovery that stops with an error (here: a site moved to a
		// path that is a file) leaves no connection to the ally open.
		// Before, the recovery's idle connection stayed open to the ally's
		// idle timeout (two minutes).
		notADir := filepath.Join(t.TempDir(), "a-file")
		if err := os.WriteFile(notADir, []byte("not a site"), 0o600); err != nil {
			t.Fatal(err)
		}
		since := lux.conns.seen()
		_, _, _, err = RecoverFromPeer(t.Context(), RecoverFromPeerOptions{RecoverOptions: RecoverOptions{Dir: dir, RootKey: &root, SitePaths: map[string]string{grown.Site: notADir}}, Card: luxCard, Fingerprint: luxFP})
		if err == nil || !strings.Contains(err.Error(), "site "+grown.Site) {
			t.Fatalf("recovery with a site moved to a file: %v", err)
		}
		if lux.conns.seen() == since {
			t.Fatal("the recovery stopped before it asked the ally: this test no longer covers its connections")
		}
		lux.conns.waitClosedSince(t, since, 30*time.Second)

		// Listed a few blobs at a time: recovery goes over the pages twice,
		// keeping only the blobs every site holds (the site's own stream
		// page by page).
		recoverPage = 7
		defer func() { recoverPage = 0 }()
		since = lux.conns.seen()
		n, rep, pr, err := RecoverFromPeer(t.Context(), RecoverFromPeerOptions{RecoverOptions: RecoverOptions{Dir: dir, RootKey: &root}, Card: luxCard, Fingerprint: luxFP})
		if err != nil {
			t.Fatalf("recover from LUX: %v (%+v)", err, pr)
		}
		closed := false
		defer func() {
			if !closed {
				n.Close()
			}
		}()
		if pr.Blobs == 0 || pr.LogVersions != len(objects) || len(pr.Missing) != 0 || pr.Deletions != 1 || pr.Refused != 1 || pr.ShardsMissing != 0 {
			t.Errorf("restore report: %+v", pr)
		}
		for _, r := range []federation.BlobRef{grown, madeUp} {
			s, _ := n.Engine.Site(r.Site)
			if info, err := s.Store.Stat(ctx, r.Name); !errors.Is(err, site.ErrNotFound) {
				t.Errorf("%s of site %s: written (%d bytes, %v)", r.Name, r.Site, info.Size, err)
			}
		}
		if rep.Rebuild.Versions != len(objects) {
			t.Errorf("index rebuilt with %d versions, want %d (%+v)", rep.Rebuild.Versions, len(objects), rep.Rebuild)
		}
		// The same node: its identity and its card.
		if got := n.Keys().Identity().Public().Ed25519Fingerprint(); got != identity {
			t.Errorf("identity %s, was %s", got, identity)
		}
		card, err := n.PeerCard()
		if err != nil {
			t.Fatal(err)
		}
		if c, err := federation.ParseCard(card); err != nil || c.Fingerprint != estFP {
			t.Errorf("card after recovery: fingerprint %s (%v), was %s: LUX would not know it", c.Fingerprint, err, estFP)
		}
		for k, want := range objects {
			r, err := n.Engine.Get(n.As(ctx, "officer"), "registry", k, vault.GetOptions{Length: -1})
			if err != nil {
				t.Fatalf("%s: %v", k, err)
			}
			got, err := io.ReadAll(r)
			r.Close()
			if err != nil || !bytes.Equal(got, want) || r.Info().VersionID != versions[k] {
				t.Fatalf("%s: %d bytes (%v) version %s, want %d bytes version %s", k, len(got), err, r.Info().VersionID, len(want), versions[k])
			}
		}
		if _, err := n.Engine.Stat(n.As(ctx, "officer"), "registry", "2026/doomed.txt", doomed); err == nil {
			t.Error("the deleted version came back")
		}
		ar, err := n.VerifyAudit(t.Context())
		if err != nil || !ar.OK {
			t.Fatalf("audit verify after recovery: %v %+v", err, ar)
		}
		// The recovered node, closed, keeps no connection to the ally open
		// either: neither the recovery's, nor its own peer client's (it
		// asked LUX, its witness, what it cosigned). Before, both stayed
		// open to LUX's idle timeout.
		closed = true
		n.Close()
		lux.conns.waitClosedSince(t, since, 30*time.Second)
	})
}
