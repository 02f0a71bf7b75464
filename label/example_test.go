package label_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/embassy-dev/embassy/label"
)

func ExampleParseText() {
	l, err := label.ParseText("NATO SECRET//REL TO EST, LUX, USA//RESTRICTIVE Compartment: ALPHA")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(l.Policy, l.Classification)
	for _, c := range l.Categories {
		fmt.Println(c.Type, c.TagName, c.Values)
	}
	fmt.Println(l)
	// Output:
	// NATO SECRET
	// PERMISSIVE Releasable To [EST LUX USA]
	// RESTRICTIVE Compartment [ALPHA]
	// NATO SECRET//REL TO EST, LUX, USA//RESTRICTIVE Compartment: ALPHA
}

func ExampleLabel_XML() {
	l := label.Label{
		Policy:         "NATO",
		Classification: "RESTRICTED",
		Categories: []label.Category{
			{TagName: label.DefaultReleasabilityTag, Type: label.Permissive, Values: []string{"EST", "LUX"}},
		},
	}
	x, err := l.XML()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(string(x))
	// Output:
	// <?xml version="1.0" encoding="UTF-8"?>
	// <slab:originatorConfidentialityLabel xmlns:slab="urn:nato:stanag:4774:confidentialitymetadatalabel:1:0">
	//   <slab:ConfidentialityInformation>
	//     <slab:PolicyIdentifier>NATO</slab:PolicyIdentifier>
	//     <slab:Classification>RESTRICTED</slab:Classification>
	//     <slab:Category TagName="Releasable To" Type="PERMISSIVE">
	//       <slab:GenericValue>EST</slab:GenericValue>
	//       <slab:GenericValue>LUX</slab:GenericValue>
	//     </slab:Category>
	//   </slab:ConfidentialityInformation>
	// </slab:originatorConfidentialityLabel>
}

func ExampleNewRegistry() {
	est := label.Policy{
		ID:     "EST",
		Levels: []string{"PIIRATUD", "KONFIDENTSIAALNE", "SALAJANE", "TÄIESTI SALAJANE"},
		Equivalents: map[string]map[string]string{
			"NATO": {"KONFIDENTSIAALNE": "CONFIDENTIAL", "SALAJANE": "SECRET"},
		},
	}
	reg, err := label.NewRegistry(est)
	if err != nil {
		fmt.Println(err)
		return
	}
	clearance, _ := reg.Level("EST", "SALAJANE")
	for _, marking := range []string{"NATO CONFIDENTIAL", "NATO NATO SECRET", "COSMIC TOP SECRET"} {
		l, err := reg.ParseText(marking)
		if err != nil {
			fmt.Println(err)
			continue
		}
		lv, _ := reg.LabelLevel(l)
		fmt.Printf("%s (rank %d): %v\n", lv, lv.Rank, reg.Dominates(clearance, lv))
	}
	_, err = reg.ParseText("FRA SECRET DEFENSE")
	fmt.Println(err)
	// Output:
	// NATO CONFIDENTIAL (rank 2): true
	// NATO SECRET (rank 3): true
	// NATO COSMIC TOP SECRET (rank 4): false
	// invalid label: unknown policy "FRA"
}

func ExampleRegistry_Normalize() {
	reg, _ := label.NewRegistry()
	l, err := label.ParseText("nato ns//PERMISSIVE ReleasableTo: est, usa")
	if err != nil {
		fmt.Println(err)
		return
	}
	n, err := reg.Normalize(l)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(n)
	// Output:
	// NATO SECRET//REL TO EST, USA
}

// signer and verifier stand in for the node's key store.
type signer struct{ priv ed25519.PrivateKey }

func (s signer) Sign(msg []byte) ([]byte, error) { return ed25519.Sign(s.priv, msg), nil }
func (s signer) KeyID() string                   { return "node-1" }

type verifier struct{ pub ed25519.PublicKey }

func (v verifier) Verify(keyID string, msg, sig []byte) error {
	if keyID != "node-1" || !ed25519.Verify(v.pub, msg, sig) {
		return errors.New("bad signature")
	}
	return nil
}

func ExampleBinding() {
	seed := sha256.Sum256([]byte("example"))
	priv := ed25519.NewKeyFromSeed(seed[:])
	l, _ := label.ParseText("NATO SECRET//REL TO EST, LUX")
	digest := sha256.Sum256([]byte("object bytes"))
	b := label.Binding{
		Label: l,
		Data:  []label.DataRef{{URI: "s3://vault/report.pdf", DigestAlg: label.DigestSHA256, Digest: digest[:]}},
	}
	if err := b.Sign(signer{priv}); err != nil {
		fmt.Println(err)
		return
	}
	wire, _ := b.MarshalJSON()

	// The receiver parses, verifies the signature, then checks the data.
	got, err := label.ParseBinding(wire)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(got.Verify(verifier{priv.Public().(ed25519.PublicKey)}))
	fmt.Println(got.CheckData("s3://vault/report.pdf", label.DigestSHA256, digest[:]))

	// A label lowered in transit no longer verifies.
	got.Label.Classification = "UNCLASSIFIED"
	err = got.Verify(verifier{priv.Public().(ed25519.PublicKey)})
	fmt.Println(errors.Is(err, label.ErrBadSignature))
	// Output:
	// <nil>
	// <nil>
	// true
}
