package node

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/embassy-dev/embassy/federation"
)

// fakeAlly answers recovery listing requests as the pages function says,
// counting them; it fails the test past maxAsks, so that a walk that does
// not stop by itself (the old loop, given an ally that lists without end)
// fails rather than runs for ever.
type fakeAlly struct {
	t     *testing.T
	pages func(n int, after string) federation.RecoverListResponse
	asked int
}

const maxAsks = 10_000

func (f *fakeAlly) ask(after string) (federation.RecoverListResponse, error) {
	f.asked++
	if f.asked > maxAsks {
		f.t.Fatalf("the listing was asked for %d pages and did not stop", f.asked)
	}
	return f.pages(f.asked, after), nil
}

// shard names a site's blob listed by a fake ally: the i-th, in order.
func shard(i int) federation.BlobRef {
	return federation.BlobRef{Site: "est-1", Name: fmt.Sprintf("s/ab/ab%030d.0", i), Size: 10}
}

// TestRecoveryListingBounded: recovery from an ally (RecoverFromPeer)
// walks the ally's listing twice, and what an ally lists is outside input.
// Before, the walk followed the pages as long as each one's Next advanced
// and took a page that did not (or had no Next) for the end: an ally
// listing without end kept a recovery going until it was stopped (holding
// every blob of every site it listed), one repeating a page had its blobs
// copied twice and counted, one going back started over, and one cutting
// the listing short with a bad Next had the recovery take what it had for
// the whole replica. Now each page is checked against the walk so far
// (walkRecoveryListing) and a listing past maxRecoverBlobs (or
// maxSharedBlobs blobs of every site) is refused, naming the ally.
func TestRecoveryListingBounded(t *testing.T) {
	defer func(b, s int) { maxRecoverBlobs, maxSharedBlobs = b, s }(maxRecoverBlobs, maxSharedBlobs)
	maxRecoverBlobs, maxSharedBlobs = 1000, 100
	const owner = "est-node"
	// page returns blobs [from, from+n) of an honest listing of total.
	page := func(from, n, total int) federation.RecoverListResponse {
		p := federation.RecoverListResponse{Owner: owner, Blobs: []federation.BlobRef{}, Deletions: 1}
		for i := from; i < from+n && i < total; i++ {
			p.Blobs = append(p.Blobs, shard(i))
		}
		if from+n < total {
			p.Truncated, p.Next = true, listingKey(p.Blobs[len(p.Blobs)-1])
		}
		return p
	}
	// index returns which blob follows after in the honest listing.
	index := func(after string) int {
		if after == "" {
			return 0
		}
		var i int
		fmt.Sscanf(strings.TrimPrefix(after, "b/est-1/s/ab/ab"), "%d", &i)
		return i + 1
	}
	for _, c := range []struct {
		name  string
		pages func(n int, after string) federation.RecoverListResponse
		want  string // in the error; "" for a listing taken whole
		blobs int    // the blobs handed on before it ended
	}{
		{"honest", func(_ int, after string) federation.RecoverListResponse { return page(index(after), 7, 30) }, "", 30},
		{"endless", func(_ int, after string) federation.RecoverListResponse {
			p := page(index(after), 7, 1<<30)
			return p
		}, "more than 1000 blobs listed", 994},
		{"endless blobs of every site", func(n int, _ string) federation.RecoverListResponse {
			var blobs []federation.BlobRef
			for i := range 7 {
				blobs = append(blobs, federation.BlobRef{Site: federation.AllSites, Name: fmt.Sprintf("log/tile/0/x%03d/%03d", n, i), Size: 10})
			}
			return federation.RecoverListResponse{Owner: owner, Blobs: blobs, Truncated: true, Next: blobs[6].Name}
		}, "more than 100 blobs of every site", 98},
		{"repeats a page", func(_ int, _ string) federation.RecoverListResponse { return page(0, 7, 30) }, "starts at or before the key asked", 7},
		{"repeats a page, Next advancing", func(n int, _ string) federation.RecoverListResponse {
			p := page(0, 7, 30)
			p.Next = listingKey(shard(7*n - 1))
			return p
		}, "starts at or before the key asked", 7},
		{"goes back", func(n int, after string) federation.RecoverListResponse {
			if n == 3 {
				return page(2, 7, 30)
			}
			return page(index(after), 7, 30)
		}, "starts at or before the key asked", 14},
		{"out of order in a page", func(_ int, after string) federation.RecoverListResponse {
			p := page(index(after), 7, 30)
			if len(p.Blobs) > 4 {
				p.Blobs[3], p.Blobs[4] = p.Blobs[4], p.Blobs[3]
			}
			return p
		}, "repeats or goes back", 0},
		{"a blob twice in a page", func(_ int, after string) federation.RecoverListResponse {
			p := page(index(after), 7, 30)
			if len(p.Blobs) > 4 {
				p.Blobs[4] = p.Blobs[3]
			}
			return p
		}, "repeats or goes back", 0},
		{"more without a Next", func(_ int, after string) federation.RecoverListResponse {
			p := page(index(after), 7, 30)
			if p.Truncated {
				p.Next = ""
			}
			return p
		}, "before its last blob", 0},
		{"Next before the page's end", func(_ int, after string) federation.RecoverListResponse {
			p := page(index(after), 7, 30)
			if p.Truncated {
				p.Next = listingKey(p.Blobs[2])
			}
			return p
		}, "before its last blob", 0},
		{"more without a blob", func(_ int, after string) federation.RecoverListResponse {
			return federation.RecoverListResponse{Owner: owner, Truncated: true, Next: after + "x"}
		}, "lists no blob but says there are more", 0},
		{"a Next of 1 MiB", func(_ int, after string) federation.RecoverListResponse {
			p := page(index(after), 7, 30)
			if p.Truncated {
				p.Next = listingKey(p.Blobs[len(p.Blobs)-1]) + strings.Repeat("z", 1<<20)
			}
			return p
		}, "a Next of 1048623 bytes", 0},
		{"another owner", func(n int, after string) federation.RecoverListResponse {
			p := page(index(after), 7, 30)
			if n == 2 {
				p.Owner = "lux-node"
			}
			return p
		}, "node lux-node's replica, the first was node est-node's", 7},
	} {
		t.Run(c.name, func(t *testing.T) {
			ally := &fakeAlly{t: t, pages: c.pages}
			got := 0
			owner, deletions, _, err := walkRecoveryListing(t.Context(), "lux-node", ally.ask, nil, func(p federation.RecoverListResponse) error {
				got += len(p.Blobs)
				return nil
			})
			if c.want == "" {
				if err != nil || got != c.blobs || owner != "est-node" || deletions != 1 {
					t.Fatalf("honest listing: %d blobs, owner %q, %d deletions, %v", got, owner, deletions, err)
				}
				return
			}
			if !errors.Is(err, errListing) || !strings.Contains(err.Error(), "peer lux-node") || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("after %d pages: %v, want errListing naming the ally and %q", ally.asked, err, c.want)
			}
			if got != c.blobs {
				t.Errorf("%d blobs handed on before the listing was refused, want %d", got, c.blobs)
			}
			if len(err.Error()) > 4<<10 {
				t.Errorf("the refusal is %d bytes long: an ally's text is held to what a key may be", len(err.Error()))
			}
		})
	}
}

// TestRecoveryListingWalkedTwice: recovery walks the ally's listing twice
// (the blobs of every site first, then each site's own) and the second
// walk must list the blobs the first did, with the same sizes. Before, an
// ally could list other blobs the second time: what was copied was not
// what the first walk had checked and counted.
func TestRecoveryListingWalkedTwice(t *testing.T) {
	listing := func(total int, change func(p *federation.RecoverListResponse)) func(int, string) federation.RecoverListResponse {
		return func(_ int, after string) federation.RecoverListResponse {
			from := 0
			if after != "" {
				fmt.Sscanf(strings.TrimPrefix(after, "b/est-1/s/ab/ab"), "%d", &from)
				from++
			}
			p := federation.RecoverListResponse{Owner: "est-node", Blobs: []federation.BlobRef{}}
			for i := from; i < from+7 && i < total; i++ {
				p.Blobs = append(p.Blobs, shard(i))
			}
			if from+7 < total {
				p.Truncated, p.Next = true, listingKey(p.Blobs[len(p.Blobs)-1])
			}
			if change != nil {
				change(&p)
			}
			return p
		}
	}
	walk := func(pages func(int, string) federation.RecoverListResponse, again *listingSum) (listingSum, int, error) {
		ally := &fakeAlly{t: t, pages: pages}
		_, _, seen, err := walkRecoveryListing(t.Context(), "lux-node", ally.ask, again, func(federation.RecoverListResponse) error { return nil })
		return seen, ally.asked, err
	}
	first, _, err := walk(listing(30, nil), nil)
	if err != nil || first.blobs != 30 {
		t.Fatalf("first walk: %d blobs, %v", first.blobs, err)
	}
	if _, _, err := walk(listing(30, nil), &first); err != nil {
		t.Fatalf("the same listing again: %v", err)
	}
	for _, c := range []struct {
		name  string
		pages func(int, string) federation.RecoverListResponse
		want  string
		asked int // pages asked before the refusal
	}{
		{"one more", listing(31, nil), "lists more blobs than the first walk", 5},
		{"endless", listing(1<<30, nil), "lists more blobs than the first walk", 5},
		{"one fewer", listing(29, nil), "changed between the two walks: 29 blobs, the first walk 30", 5},
		{"another size", listing(30, func(p *federation.RecoverListResponse) {
			for i := range p.Blobs {
				if p.Blobs[i].Name == shard(12).Name {
					p.Blobs[i].Size++
				}
			}
		}), "not the same ones", 5},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, asked, err := walk(c.pages, &first)
			if !errors.Is(err, errListing) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "peer lux-node") {
				t.Fatalf("second walk: %v, want errListing naming the ally and %q", err, c.want)
			}
			if asked != c.asked {
				t.Errorf("refused after %d pages, want %d", asked, c.asked)
			}
		})
	}
}
