package site

import "context"

type coldReadKey struct{}

// WithColdRead returns a context whose Gets tell a driver that each range
// is read once, from start to end, and most likely from the disk rather
// than from any cache: a repair reading the survivors of a lost site. A
// driver may then bypass its caches (the dir driver reads ranges of 1 MiB
// or more with O_DIRECT). It is a hint about cost, never about what is
// returned: a Get returns the same bytes with or without it.
func WithColdRead(ctx context.Context) context.Context {
	return context.WithValue(ctx, coldReadKey{}, true)
}

// ColdRead reports whether ctx carries WithColdRead's hint.
func ColdRead(ctx context.Context) bool {
	v, _ := ctx.Value(coldReadKey{}).(bool)
	return v
}
