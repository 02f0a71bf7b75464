package manifest

import (
	"strings"
	"testing"
)

// TestParseShardBlobName: every name ShardBlobName writes parses back to
// its id and shard; near misses do not.
func TestParseShardBlobName(t *testing.T) {
	id := NewID()
	for _, n := range []int{0, 5, 17, 0xffff} {
		name := ShardBlobName(id, n)
		got, gn, ok := ParseShardBlobName(name)
		if !ok || got != id || gn != n {
			t.Errorf("%s: got %s %d %v", name, got, gn, ok)
		}
	}
	good := ShardBlobName(id, 3)
	for _, bad := range []string{
		"", "s/", good[:len(good)-2], good + "x", good[:37] + ".03", good[:37] + ".-1",
		"m" + good[1:], "s/zz" + good[4:], ShardBlobName(id, 0x10000), BlobName(id),
	} {
		if _, _, ok := ParseShardBlobName(bad); ok {
			t.Errorf("%q parsed as a shard blob name", bad)
		}
	}
}

// FuzzParseShardBlobName: a name (as a site lists it) parses only when
// ShardBlobName would write exactly that name.
func FuzzParseShardBlobName(f *testing.F) {
	f.Add(ShardBlobName(NewID(), 2))
	f.Add("s/ab/abab.1")
	f.Fuzz(func(t *testing.T, name string) {
		id, n, ok := ParseShardBlobName(name)
		if ok && ShardBlobName(id, n) != name {
			t.Fatalf("%q parsed as %s %d", name, id, n)
		}
	})
}

// TestParseBlobName: every name BlobName writes parses back to its id;
// near misses do not. A name in upper or mixed case decoded to a version
// id before, so a blob the node never wrote (a site's listing is outside
// input) counted as a copy of that version's manifest: collection took it
// for a deleted version's copy, the rebuild for a copy it then read under
// another name.
func TestParseBlobName(t *testing.T) {
	id := ID{0xab, 0xcd, 0xef, 1, 2, 3}
	name := BlobName(id)
	if got, ok := ParseBlobName(name); !ok || got != id {
		t.Fatalf("%s: got %s %v", name, got, ok)
	}
	for _, bad := range []string{
		"", "m/", name[:len(name)-1], name + "0", "s" + name[1:],
		strings.ToUpper(name[:2]) + strings.ToUpper(name[2:]),
		"m/ab/" + strings.ToUpper(name[5:]),
		"m/AB/AB" + name[7:],
		"m/ab/aB" + name[7:],
		"m/cd/" + name[5:],
		ShardBlobName(id, 0),
	} {
		if got, ok := ParseBlobName(bad); ok {
			t.Errorf("%q parsed as the manifest blob of %s", bad, got)
		}
	}
}

// FuzzParseBlobName: a name (as a site lists it) parses only when BlobName
// would write exactly that name.
func FuzzParseBlobName(f *testing.F) {
	f.Add(BlobName(NewID()))
	f.Add("m/AB/AB000000000000000000000000000000")
	f.Fuzz(func(t *testing.T, name string) {
		id, ok := ParseBlobName(name)
		if ok && BlobName(id) != name {
			t.Fatalf("%q parsed as %s", name, id)
		}
	})
}
