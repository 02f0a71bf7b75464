package vault

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"testing"

	"github.com/embassy-dev/embassy/manifest"
)

// countingKeys counts the signature verifications it does.
type countingKeys struct {
	Keys
	n int
}

func (k *countingKeys) Verify(msg, sig []byte) error {
	k.n++
	return k.Keys.Verify(msg, sig)
}

// TestSigCache: a signature is verified once per generation of keys;
// anything else about the bytes, a failure, other keys or an evicted
// entry means a real verification again.
func TestSigCache(t *testing.T) {
	keys := &countingKeys{Keys: newTestNode(t).keys}
	msg := []byte("signed bytes")
	sig, err := keys.Sign(msg)
	if err != nil {
		t.Fatal(err)
	}
	c := newSigCache(4)
	check := func(name string, gen uint64, msg, sig []byte, wantErr bool, wantCalls int) {
		t.Helper()
		before := keys.n
		err := c.verify(keys, gen, msg, sig)
		if (err != nil) != wantErr {
			t.Fatalf("%s: err = %v, want error %v", name, err, wantErr)
		}
		if got := keys.n - before; got != wantCalls {
			t.Fatalf("%s: %d verifications, want %d", name, got, wantCalls)
		}
	}
	bad := bytes.Clone(sig)
	bad[5] ^= 1
	check("first time", 1, msg, sig, false, 1)
	check("again", 1, msg, sig, false, 0)
	check("a flipped signature bit", 1, msg, bad, true, 1)
	check("a failure is not remembered", 1, msg, bad, true, 1)
	check("other bytes under the same signature", 1, []byte("signed bytez"), sig, true, 1)
	check("the genuine one still hits", 1, msg, sig, false, 0)
	check("keys replaced (SetKeys)", 2, msg, sig, false, 1)
	check("remembered under the new keys", 2, msg, sig, false, 0)
	check("a verification begun under old keys", 1, msg, sig, false, 1)
	check("is not remembered", 1, msg, sig, false, 1)

	// Bounded: after 2×max other entries, the first is verified again.
	for i := range 8 {
		m := fmt.Appendf(nil, "message %d", i)
		s, _ := keys.Sign(m)
		check("filling", 2, m, s, false, 1)
	}
	if n := len(c.cur) + len(c.old); n > 2*4 {
		t.Fatalf("cache holds %d entries, bound 8", n)
	}
	check("evicted", 2, msg, sig, false, 1)
}

// TestReadsVerifyEveryEnvelope: once a version was read (its signature
// remembered), an index entry whose envelope is altered — a flipped
// signature, or other bytes signed by no one — is still refused, and the
// genuine envelope still reads.
func TestReadsVerifyEveryEnvelope(t *testing.T) {
	e := newTestNode(t).e
	ctx := t.Context()
	info, err := e.Put(ctx, "registry", "doc", bytes.NewReader([]byte("hello")), PutOptions{Size: 5})
	if err != nil {
		t.Fatal(err)
	}
	read := func() error {
		r, err := e.Get(ctx, "registry", "doc", GetOptions{Length: -1})
		if err != nil {
			return err
		}
		return r.Close()
	}
	if err := read(); err != nil {
		t.Fatal(err)
	}
	v, err := e.index.Get(ctx, "registry", "doc", info.VersionID)
	if err != nil {
		t.Fatal(err)
	}
	for _, at := range []struct {
		name string
		off  int // from the end
	}{{"signature", 10}, {"sealed body", 100}} {
		t.Run(at.name, func(t *testing.T) {
			bad := v
			bad.Envelope = bytes.Clone(v.Envelope)
			bad.Envelope[len(bad.Envelope)-at.off] ^= 1
			if err := e.index.Put(ctx, bad); err != nil {
				t.Fatal(err)
			}
			defer e.index.Put(ctx, v)
			if err := read(); !errors.Is(err, manifest.ErrCorrupt) {
				t.Fatalf("read with the envelope's %s altered: %v, want ErrCorrupt", at.name, err)
			}
		})
	}
	if err := read(); err != nil {
		t.Fatalf("genuine envelope unreadable after the test restored it: %v", err)
	}
}

// TestSignedIsRemembered: the envelope a put signs is remembered as
// verified, so the first read of the version verifies it by hash only;
// what it remembers is only what the keys verify (they accept what they
// sign), and an envelope altered in the index is still refused
// (TestReadsVerifyEveryEnvelope). It fails when sealing does not remember.
func TestSignedIsRemembered(t *testing.T) {
	n := newTestNode(t)
	e := n.e
	ctx := t.Context()
	msg := []byte("any bytes the keys sign")
	sig, err := n.keys.Sign(msg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.keys.Verify(msg, sig); err != nil {
		t.Fatalf("the keys do not verify what they sign: %v", err)
	}
	for _, size := range []int{5, 3 * testStripe} { // inline and streamed
		key := fmt.Sprintf("doc-%d", size)
		info, err := e.Put(ctx, "registry", key, bytes.NewReader(bytes.Repeat([]byte{7}, size)), PutOptions{Size: int64(size)})
		if err != nil {
			t.Fatal(err)
		}
		v, err := e.index.Get(ctx, "registry", key, info.VersionID)
		if err != nil {
			t.Fatal(err)
		}
		env := v.Envelope
		k := sigKey(env[:len(env)-ed25519.SignatureSize], env[len(env)-ed25519.SignatureSize:])
		e.sigs.mu.Lock()
		_, hit := e.sigs.cur[k]
		e.sigs.mu.Unlock()
		if !hit {
			t.Fatalf("%d bytes: the put's envelope signature is not remembered", size)
		}
		// The first read verifies by hash: the keys are not asked.
		counting := &countingKeys{Keys: e.k()}
		ck := cachedKeys{Keys: counting, c: e.sigs, gen: e.keysGen}
		if _, err := manifest.Open(env, ck); err != nil {
			t.Fatal(err)
		}
		if counting.n != 0 {
			t.Fatalf("%d bytes: the first read verified the signature %d times, want 0", size, counting.n)
		}
	}
}
