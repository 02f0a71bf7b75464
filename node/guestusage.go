package node

// GuestUsage is what this node holds for a guest node: the bytes and
// number of blobs of its hosted site (Kind "site") or of the replicas it
// keeps of the guest's data (Kind "replica"). No names, no labels.
type GuestUsage struct {
	Node   string `json:"node"`
	Nation string `json:"nation"`
	Kind   string `json:"kind"`
	Bytes  int64  `json:"bytes"`
	Blobs  int64  `json:"blobs"`
}
