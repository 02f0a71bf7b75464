package sharefile_test

import (
	"fmt"

	"github.com/embassy-dev/embassy/custody/shamir"
	"github.com/embassy-dev/embassy/custody/sharefile"
)

func Example() {
	// The node splits its root key and seals one share to each custodian.
	rootKey := []byte("a 32-byte root key, for example.")
	_, shares, err := shamir.SplitSet(rootKey, 3, 2)
	if err != nil {
		panic(err)
	}
	pub, priv, err := sharefile.GenerateKey() // the custodian's key pair
	if err != nil {
		panic(err)
	}
	share, err := shares[0].MarshalBinary()
	if err != nil {
		panic(err)
	}
	file, err := sharefile.Seal(share, sharefile.Header{Node: "est-1", Custodian: "Mari"}, pub)
	if err != nil {
		panic(err)
	}
	text, err := sharefile.Armor(file) // to print or mail
	if err != nil {
		panic(err)
	}

	// Later, anyone can see whose share it is; only the custodian opens it.
	hdr, err := sharefile.ParseHeader(text)
	if err != nil {
		panic(err)
	}
	fmt.Printf("share %d of %d for %s\n", hdr.Index, hdr.Total, hdr.Custodian)
	_, opened, err := sharefile.Open(text, priv)
	if err != nil {
		panic(err)
	}
	s, err := shamir.ParseSetShare(opened)
	if err != nil {
		panic(err)
	}
	fmt.Printf("opened share %d, %d bytes\n", s.Share.X, len(s.Share.Y))
	// Output:
	// share 1 of 3 for Mari
	// opened share 1, 32 bytes
}
