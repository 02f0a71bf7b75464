// Command md5burn hashes MiB after MiB with MD5 until its standard input
// closes: a process with symbols for TestPerfRecordsAPhase to sample (go
// test links its own binaries without them).
package main

import (
	"crypto/md5"
	"fmt"
	"io"
	"os"
)

func main() {
	done := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(done) }()
	buf := make([]byte, 1<<20)
	h := md5.New()
	fmt.Println("hashing")
	for n := 0; ; n++ {
		select {
		case <-done:
			fmt.Println(n)
			return
		default:
		}
		h.Write(buf)
	}
}
