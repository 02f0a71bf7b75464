package vault

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/manifest"
)

func TestRewrapVaultIsResumable(t *testing.T) {
	n := newTestNode(t)
	ctx := t.Context()
	want := map[string][]byte{}
	for i, size := range []int{0, 10, 3 * testStripe, 9 * testStripe} {
		key := fmt.Sprintf("rot/%d", i)
		want[key] = content(key, size)
		n.put(key, want[key])
	}
	// A multipart upload in progress across the rotation keeps its
	// parts' key generation.
	up, _ := n.e.CreateUpload(ctx, "registry", "rot/mp", PutOptions{})
	p1 := content("mp1", MinPartSize)
	pi, err := n.e.PutPart(ctx, "registry", "rot/mp", up.ID, 1, bytes.NewReader(p1), int64(len(p1)), nil)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := n.e.Vault("registry")
	v.KeyGen = 2
	if err := n.e.SetVault(v); err != nil {
		t.Fatal(err)
	}
	p2 := []byte("last part")
	pi2, _ := n.e.PutPart(ctx, "registry", "rot/mp", up.ID, 2, bytes.NewReader(p2), int64(len(p2)), nil)
	if _, err := n.e.CompleteUpload(ctx, "registry", "rot/mp", up.ID, []CompletePart{{1, pi.ETag}, {2, pi2.ETag}}); err != nil {
		t.Fatal(err)
	}
	want["rot/mp"] = append(append([]byte(nil), p1...), p2...)

	// Interrupt the rotation after the first re-wrap, as a crash would.
	cctx, cancel := context.WithCancel(ctx)
	st, err := n.e.RewrapVault(cctx, "registry", 2, func(s RewrapStats) {
		if s.Rewrapped == 1 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) || st.Rewrapped != 1 {
		t.Fatalf("interrupted rotation: %+v, %v", st, err)
	}
	for key, w := range want {
		if got := n.mustRead(key); !bytes.Equal(got, w) {
			t.Fatalf("%s unreadable mid-rotation", key)
		}
	}
	st, err = n.e.RewrapVault(ctx, "registry", 2, nil)
	if err != nil || st.Rewrapped == 0 {
		t.Fatalf("resumed rotation: %+v, %v", st, err)
	}
	if st, _ := n.e.RewrapVault(ctx, "registry", 2, nil); st.Rewrapped != 0 {
		t.Fatalf("a finished rotation re-wrapped %d versions again", st.Rewrapped)
	}
	vp, _ := n.e.Versions(ctx, "registry", index.VersionOptions{})
	for _, iv := range vp.Versions {
		full, _ := n.ix.Get(ctx, "registry", iv.Key, iv.ID)
		m, err := manifest.Open(full.Envelope, n.keys)
		if err != nil {
			t.Fatal(err)
		}
		if m.KeyGen != 2 {
			t.Fatalf("%s still under key generation %d", iv.Key, m.KeyGen)
		}
		for _, p := range m.Parts {
			if p.KeyGen != 0 {
				t.Fatalf("%s part %d keeps generation %d", iv.Key, p.Number, p.KeyGen)
			}
			// Generation 1 no longer opens the data key.
			if _, err := n.keys.UnwrapDataKey("registry", 1, p.WrappedKey, partAAD(m.Version, p.Number, p.Blob)); err == nil {
				t.Fatalf("%s part %d still opens with the old key", iv.Key, p.Number)
			}
		}
	}
	for key, w := range want {
		if got := n.mustRead(key); !bytes.Equal(got, w) {
			t.Fatalf("%s differs after rotation", key)
		}
	}
}

// TestIncarnationSeparatesKeys: a vault's incarnation is part of its keys'
// derivation. What a vault of the same name but another incarnation (one
// deleted and created again) wrapped does not unwrap; a vault without an
// incarnation (made before they existed) keeps the keys derived from its
// name alone.
func TestIncarnationSeparatesKeys(t *testing.T) {
	n := newTestNode(t)
	v, _ := n.e.Vault("registry")
	legacy := n.put("legacy", content("legacy", 100))
	first := v
	first.Incarnation = "1111111111111111"
	if err := n.e.SetVault(first); err != nil {
		t.Fatal(err)
	}
	info := n.put("first", content("first", 3*testStripe))
	if _, err := n.e.Get(n.t.Context(), "registry", "first", GetOptions{Length: -1}); err != nil {
		t.Fatal(err)
	}
	again := v
	again.Incarnation = "2222222222222222"
	if err := n.e.SetVault(again); err != nil {
		t.Fatal(err)
	}
	if _, _, err := n.read("first", GetOptions{VersionID: info.VersionID, Length: -1}); err == nil {
		t.Fatal("a re-created vault reads what the earlier one wrote")
	}
	if err := n.e.SetVault(v); err != nil {
		t.Fatal(err)
	}
	if got := n.mustRead("legacy"); !bytes.Equal(got, content("legacy", 100)) {
		t.Fatal("a vault without an incarnation no longer reads its data")
	}
	_ = legacy
}

// TestRewrapSkipsAVersionDeletedMeanwhile: a version is deleted after the
// rotation listed its page and before its turn. Before, its re-wrap found
// it gone from the index and the rotation stopped with "not found" (a
// rerun resumed it); now it is counted as deleted and the rotation goes
// on to the end.
func TestRewrapSkipsAVersionDeletedMeanwhile(t *testing.T) {
	n := newTestNode(t)
	ctx := t.Context()
	ids := map[string]manifest.ID{}
	for i := range 4 {
		key := fmt.Sprintf("rot/%d", i)
		ids[key] = n.put(key, content(key, 3*testStripe)).VersionID
	}
	v, _ := n.e.Vault("registry")
	v.KeyGen = 2
	if err := n.e.SetVault(v); err != nil {
		t.Fatal(err)
	}
	deleted := false
	st, err := n.e.RewrapVault(ctx, "registry", 2, func(s RewrapStats) {
		if !deleted {
			deleted = true
			if _, err := n.e.Delete(ctx, "registry", "rot/3", DeleteOptions{VersionID: ids["rot/3"]}); err != nil {
				t.Error(err)
			}
		}
	})
	if err != nil {
		t.Fatalf("rotation with a version deleted meanwhile: %+v, %v", st, err)
	}
	if st.Versions != 4 || st.Rewrapped != 3 || st.Deleted != 1 {
		t.Errorf("rotation: %+v; want 4 versions, 3 re-wrapped, 1 deleted", st)
	}
	for i := range 3 {
		key := fmt.Sprintf("rot/%d", i)
		if got := n.mustRead(key); !bytes.Equal(got, content(key, 3*testStripe)) {
			t.Errorf("%s reads back wrong after the rotation", key)
		}
	}
}
