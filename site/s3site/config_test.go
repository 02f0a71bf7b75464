package s3site_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/embassy-dev/embassy/site/s3site"
)

func validConfig() s3site.Config {
	return s3site.Config{Endpoint: "s3.example.eu:443", Bucket: "embassy-est-1", AccessKey: "AK", SecretKey: "secret-key", Secure: true}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name    string
		edit    func(*s3site.Config)
		wantErr string // "" for valid
	}{
		{"valid", func(*s3site.Config) {}, ""},
		{"bare host", func(c *s3site.Config) { c.Endpoint = "s3.example.eu" }, ""},
		{"ipv6", func(c *s3site.Config) { c.Endpoint = "[::1]:9000" }, ""},
		{"prefix with slashes", func(c *s3site.Config) { c.Prefix = "/embassy/est-1/" }, ""},
		{"object lock", func(c *s3site.Config) { c.ObjectLock = &s3site.ObjectLock{Mode: "COMPLIANCE", Days: 30} }, ""},
		{"ca file over tls", func(c *s3site.Config) { c.CAFile = "/etc/ca.pem" }, ""},
		{"no endpoint", func(c *s3site.Config) { c.Endpoint = "" }, "endpoint: must be set"},
		{"endpoint with scheme", func(c *s3site.Config) { c.Endpoint = "https://s3.example.eu" }, "endpoint: \"https://s3.example.eu\": give host:port without a scheme"},
		{"endpoint with path", func(c *s3site.Config) { c.Endpoint = "s3.example.eu/bucket" }, "endpoint: \"s3.example.eu/bucket\": must be host:port"},
		{"endpoint bad port", func(c *s3site.Config) { c.Endpoint = "s3.example.eu:https" }, "port must be a number"},
		{"bare ipv6", func(c *s3site.Config) { c.Endpoint = "::1" }, "IPv6 address in brackets"},
		{"no bucket", func(c *s3site.Config) { c.Bucket = "" }, "bucket: must be set"},
		{"bucket upper case", func(c *s3site.Config) { c.Bucket = "Embassy" }, "bucket \"Embassy\""},
		{"bucket too short", func(c *s3site.Config) { c.Bucket = "ab" }, "bucket \"ab\""},
		{"prefix dot dot", func(c *s3site.Config) { c.Prefix = "a/../b" }, "prefix \"a/../b\""},
		{"prefix double slash", func(c *s3site.Config) { c.Prefix = "a//b" }, "prefix \"a//b\""},
		{"prefix too long", func(c *s3site.Config) { c.Prefix = strings.Repeat("p", 600) }, "too long"},
		{"region", func(c *s3site.Config) { c.Region = "eu central" }, "region \"eu central\""},
		{"no access key", func(c *s3site.Config) { c.AccessKey = "" }, "access_key: must be set"},
		{"no secret key", func(c *s3site.Config) { c.SecretKey = "" }, "secret_key: must be set"},
		{"ca file without tls", func(c *s3site.Config) { c.CAFile = "/etc/ca.pem"; c.Secure = false }, "ca_file /etc/ca.pem: set secure too"},
		{"lock mode", func(c *s3site.Config) { c.ObjectLock = &s3site.ObjectLock{Mode: "governance", Days: 1} }, "object_lock.mode \"governance\": must be GOVERNANCE or COMPLIANCE"},
		{"lock days zero", func(c *s3site.Config) { c.ObjectLock = &s3site.ObjectLock{Mode: "GOVERNANCE"} }, "object_lock.days 0: must be 1 to"},
		{"lease short", func(c *s3site.Config) { c.Lease = s3site.Duration(time.Millisecond) }, "lease 1ms: must be from 1s to 1h0m0s"},
		{"lease long", func(c *s3site.Config) { c.Lease = s3site.Duration(2 * time.Hour) }, "lease 2h0m0s: must be from 1s to 1h0m0s"},
		{"lock days huge", func(c *s3site.Config) { c.ObjectLock = &s3site.ObjectLock{Mode: "GOVERNANCE", Days: 100000} }, "object_lock.days 100000"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.edit(&c)
			err := c.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate = %v, want an error containing %q", err, tc.wantErr)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "s3 site: ") || strings.HasSuffix(msg, ".") {
				t.Errorf("error %q: want lower-case 's3 site: ...' without a trailing period", msg)
			}
		})
	}
}

// TestNewValidates checks that New refuses an invalid configuration
// before any request.
func TestNewValidates(t *testing.T) {
	c := validConfig()
	c.Bucket = ""
	if _, err := s3site.New(t.Context(), c); err == nil || !strings.Contains(err.Error(), "bucket") {
		t.Fatalf("New with no bucket: %v", err)
	}
	c = validConfig()
	c.CAFile = "/nonexistent/ca.pem"
	if _, err := s3site.New(t.Context(), c); err == nil || !strings.Contains(err.Error(), "ca_file") {
		t.Fatalf("New with a missing CA file: %v", err)
	}
}

func TestConfigYAML(t *testing.T) {
	const doc = `
endpoint: s3.example.eu:443
region: eu-central-1
bucket: embassy-est-1
prefix: shards
access_key: AK
secret_key: the-secret
secure: true
ca_file: /etc/embassy/ca.pem
create_bucket: true
object_lock:
  mode: COMPLIANCE
  days: 30
lease: 45s
`
	var c s3site.Config
	if err := yaml.Unmarshal([]byte(doc), &c); err != nil {
		t.Fatal(err)
	}
	want := s3site.Config{Endpoint: "s3.example.eu:443", Region: "eu-central-1", Bucket: "embassy-est-1", Prefix: "shards",
		AccessKey: "AK", SecretKey: "the-secret", Secure: true, CAFile: "/etc/embassy/ca.pem", CreateBucket: true,
		ObjectLock: &s3site.ObjectLock{Mode: "COMPLIANCE", Days: 30}, Lease: s3site.Duration(45 * time.Second)}
	if c.ObjectLock == nil || *c.ObjectLock != *want.ObjectLock {
		t.Fatalf("object_lock = %+v, want %+v", c.ObjectLock, want.ObjectLock)
	}
	c.ObjectLock, want.ObjectLock = nil, nil
	if c != want {
		t.Fatalf("got %+v, want %+v", c, want)
	}
	out, err := yaml.Marshal(&c)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "secret_key: the-secret") || !strings.Contains(string(out), "lease: 45s") {
		t.Errorf("YAML form lost the secret or the lease:\n%s", out)
	}
	if c.LeaseTime() != 45*time.Second || (&s3site.Config{}).LeaseTime() != s3site.DefaultLease {
		t.Errorf("lease time %v; default %v", c.LeaseTime(), (&s3site.Config{}).LeaseTime())
	}
	var bad s3site.Config
	if err := yaml.Unmarshal([]byte("lease: soon\n"), &bad); err == nil || !strings.Contains(err.Error(), `"soon" is not a duration`) {
		t.Errorf("lease: soon: %v", err)
	}
}

// TestSecretRedacted checks the secret never shows when a configuration
// is printed or logged.
func TestSecretRedacted(t *testing.T) {
	c := validConfig()
	c.SecretKey = "do-not-print-me"
	var log bytes.Buffer
	l := slog.New(slog.NewTextHandler(&log, nil))
	l.Info("site", "config", c, "secret", c.SecretKey)
	jl := slog.New(slog.NewJSONHandler(&log, nil))
	jl.Info("site", "secret", c.SecretKey)
	for _, out := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), fmt.Sprintf("%v", &c), c.SecretKey.String(), fmt.Sprint(c.SecretKey), log.String()} {
		if strings.Contains(out, "do-not-print-me") {
			t.Errorf("secret printed: %s", out)
		}
	}
}
