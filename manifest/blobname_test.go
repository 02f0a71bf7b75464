package manifest

import "testing"

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
