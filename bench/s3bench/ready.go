package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// readyCmd waits until the endpoint answers a signed ListBuckets, failing
// early if the server process (-pid) has exited.
func readyCmd(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("ready", flag.ContinueOnError)
	fs.SetOutput(stderr)
	endpoint := fs.String("endpoint", "", "S3 endpoint as host:port")
	accessKey := fs.String("access-key", "", "S3 access key")
	secretKey := fs.String("secret-key", "", "S3 secret key")
	pid := fs.Int("pid", 0, "server process id; give up as soon as it is gone")
	timeout := fs.Duration("timeout", 2*time.Minute, "how long to wait")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *endpoint == "" || *accessKey == "" || *secretKey == "" {
		return errors.New("ready: -endpoint, -access-key and -secret-key are required")
	}
	c, err := minio.New(*endpoint, &minio.Options{
		Creds:      credentials.NewStaticV4(*accessKey, *secretKey, ""),
		Region:     "us-east-1",
		MaxRetries: 1,
	})
	if err != nil {
		return fmt.Errorf("ready: client for %s: %w", *endpoint, err)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	for {
		try, cancelTry := context.WithTimeout(ctx, 5*time.Second)
		_, err := c.ListBuckets(try)
		cancelTry()
		if err == nil {
			return nil
		}
		if *pid != 0 {
			if !alive(*pid) {
				return fmt.Errorf("ready: server process %d exited before %s answered: %w", *pid, *endpoint, err)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("ready: %s did not answer within %s: %w", *endpoint, *timeout, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// freeportCmd prints a TCP port on 127.0.0.1 that was free a moment ago.
func freeportCmd(args []string, stdout io.Writer) error {
	if len(args) != 0 {
		return fmt.Errorf("freeport: unexpected argument %q", args[0])
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("freeport: %w", err)
	}
	defer ln.Close()
	fmt.Fprintln(stdout, ln.Addr().(*net.TCPAddr).Port)
	return nil
}

// alive reports whether process pid exists and is not a zombie.
func alive(pid int) bool {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(raw)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && !strings.HasPrefix(strings.TrimSpace(s[i+1:]), "Z")
}
