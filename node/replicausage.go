package node

import "context"

// replicaUsage lists what this node holds as replicas of its allies' data
// (replicate-level grants), per owner node: sizes and counts only. A stub
// until replication lands (it replaces this file): no replicas yet.
func (n *Node) replicaUsage(context.Context) ([]GuestUsage, error) { return nil, nil }
