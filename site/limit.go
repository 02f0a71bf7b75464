package site

import "io"

// Limited returns rc passing on at most length bytes of it (all of them
// when length < 0), and closing rc when closed. A Get's answer is outside
// input: a driver, or the provider, host or ally behind it, may send more
// than was asked (a range ignored, an answer without end), and callers
// read what they asked for into memory. [Guarded] applies it to every Get,
// so every site the node opens is held to it whatever its driver does;
// other readers of a site (an ally's shared blobs) call it themselves.
//
// It does not fail an answer shorter than asked: a range past a blob's
// end yields fewer bytes by the [Site] contract, which callers use (a
// manifest's envelope read with a guess of its length, a journal batch
// read up to its limit), and what a short blob means is the caller's to
// say (a damaged shard, to be rebuilt; not an unavailable site).
func Limited(rc io.ReadCloser, length int64) io.ReadCloser {
	if length < 0 {
		return rc
	}
	return &limited{LimitedReader: io.LimitedReader{R: rc, N: length}, c: rc}
}

type limited struct {
	io.LimitedReader
	c io.Closer
}

func (l *limited) Close() error { return l.c.Close() }
