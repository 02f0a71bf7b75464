package sigv4

import (
	"net/url"
	"strings"
	"sync"
	"testing"
)

const goodSig = "fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024"

func TestParseAuthorization(t *testing.T) {
	good := "Credential=AKID/20130524/us-east-1/s3/aws4_request"
	tests := []struct {
		name   string
		header string
		code   Code // "" when it parses
		signed string
	}{
		{"with spaces", "AWS4-HMAC-SHA256 " + good + ", SignedHeaders=host;range;x-amz-date, Signature=" + goodSig, "", "host;range;x-amz-date"},
		{"without spaces", "AWS4-HMAC-SHA256 " + good + ",SignedHeaders=host,Signature=" + goodSig, "", "host"},
		{"parts reordered", "AWS4-HMAC-SHA256 Signature=" + goodSig + ", SignedHeaders=host, " + good, "", "host"},
		{"extra spaces", "AWS4-HMAC-SHA256   " + good + " ,  SignedHeaders=host ,Signature=" + goodSig + " ", "", "host"},
		{"no algorithm", good + ", SignedHeaders=host, Signature=" + goodSig, AuthorizationHeaderMalformed, ""},
		{"algorithm glued", "AWS4-HMAC-SHA256" + good + ", SignedHeaders=host, Signature=" + goodSig, AuthorizationHeaderMalformed, ""},
		{"missing credential", "AWS4-HMAC-SHA256 SignedHeaders=host, Signature=" + goodSig, AuthorizationHeaderMalformed, ""},
		{"missing signed headers", "AWS4-HMAC-SHA256 " + good + ", Signature=" + goodSig, AuthorizationHeaderMalformed, ""},
		{"missing signature", "AWS4-HMAC-SHA256 " + good + ", SignedHeaders=host", AuthorizationHeaderMalformed, ""},
		{"repeated part", "AWS4-HMAC-SHA256 " + good + ", " + good + ", SignedHeaders=host, Signature=" + goodSig, AuthorizationHeaderMalformed, ""},
		{"unknown part", "AWS4-HMAC-SHA256 " + good + ", SignedHeaders=host, Signature=" + goodSig + ", Extra=1", AuthorizationHeaderMalformed, ""},
		{"part without =", "AWS4-HMAC-SHA256 " + good + ", SignedHeaders, Signature=" + goodSig, AuthorizationHeaderMalformed, ""},
		{"lower-case part name", "AWS4-HMAC-SHA256 credential=AKID/20130524/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=" + goodSig, AuthorizationHeaderMalformed, ""},
		{"credential of four parts", "AWS4-HMAC-SHA256 Credential=AKID/20130524/us-east-1/s3, SignedHeaders=host, Signature=" + goodSig, AuthorizationHeaderMalformed, ""},
		{"credential of six parts", "AWS4-HMAC-SHA256 Credential=AK/ID/20130524/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=" + goodSig, AuthorizationHeaderMalformed, ""},
		{"empty access key", "AWS4-HMAC-SHA256 Credential=/20130524/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=" + goodSig, AuthorizationHeaderMalformed, ""},
		{"empty region", "AWS4-HMAC-SHA256 Credential=AKID/20130524//s3/aws4_request, SignedHeaders=host, Signature=" + goodSig, AuthorizationHeaderMalformed, ""},
		{"bad date", "AWS4-HMAC-SHA256 Credential=AKID/2013-05-24/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=" + goodSig, AuthorizationHeaderMalformed, ""},
		{"impossible date", "AWS4-HMAC-SHA256 Credential=AKID/20131324/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=" + goodSig, AuthorizationHeaderMalformed, ""},
		{"other service", "AWS4-HMAC-SHA256 Credential=AKID/20130524/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=" + goodSig, AuthorizationHeaderMalformed, ""},
		{"other terminal", "AWS4-HMAC-SHA256 Credential=AKID/20130524/us-east-1/s3/aws5_request, SignedHeaders=host, Signature=" + goodSig, AuthorizationHeaderMalformed, ""},
		{"host not signed", "AWS4-HMAC-SHA256 " + good + ", SignedHeaders=range;x-amz-date, Signature=" + goodSig, AuthorizationHeaderMalformed, ""},
		{"upper-case signed header", "AWS4-HMAC-SHA256 " + good + ", SignedHeaders=Host, Signature=" + goodSig, AuthorizationHeaderMalformed, ""},
		{"empty signed header", "AWS4-HMAC-SHA256 " + good + ", SignedHeaders=host;;range, Signature=" + goodSig, AuthorizationHeaderMalformed, ""},
		{"repeated signed header", "AWS4-HMAC-SHA256 " + good + ", SignedHeaders=host;host, Signature=" + goodSig, AuthorizationHeaderMalformed, ""},
		{"too long", "AWS4-HMAC-SHA256 " + good + ", SignedHeaders=host;" + strings.Repeat("x", maxAuthLen) + ", Signature=" + goodSig, AuthorizationHeaderMalformed, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := parseAuthorization(tt.header)
			if tt.code != "" {
				wantCode(t, err, tt.code)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c := s.cred
			if c.accessKey != "AKID" || c.date != "20130524" || c.region != "us-east-1" || c.scope != "20130524/us-east-1/s3/aws4_request" {
				t.Fatalf("credential %+v", c)
			}
			if s.signedRaw != tt.signed || strings.Join(s.signedHeaders, ";") != tt.signed || s.sig != goodSig {
				t.Fatalf("signed %q %v, signature %q", s.signedRaw, s.signedHeaders, s.sig)
			}
		})
	}
}

func TestCanonicalURI(t *testing.T) {
	tests := []struct {
		name, path, rawPath, want string
	}{
		{"empty", "", "", "/"},
		{"root", "/", "", "/"},
		{"plain", "/bucket/key", "", "/bucket/key"},
		{"space", "/bucket/a b", "", "/bucket/a%20b"},
		{"reserved characters", "/b/$&+,:;=@!*'()", "", "/b/%24%26%2B%2C%3A%3B%3D%40%21%2A%27%28%29"},
		{"unreserved kept", "/b/AZaz09-._~", "", "/b/AZaz09-._~"},
		{"non-ascii", "/b/ü€", "", "/b/%C3%BC%E2%82%AC"},
		{"not double-encoded", "/b/a%20b", "/b/a%2520b", "/b/a%2520b"},
		{"encoded slash kept", "/b/a/b", "/b/a%2Fb", "/b/a%2Fb"},
		{"lower-case hex normalised", "/b/a/b", "/b/a%2fb", "/b/a%2Fb"},
		{"dot segments kept", "/b/./a/../c", "", "/b/./a/../c"},
		{"double slash kept", "/b//c/", "", "/b//c/"},
		{"percent", "/b/100%", "", "/b/100%25"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := &url.URL{Path: tt.path, RawPath: tt.rawPath}
			if got := canonicalURI(u); got != tt.want {
				t.Fatalf("canonicalURI = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCanonicalQuery(t *testing.T) {
	tests := []struct {
		name, raw, skip, want string
	}{
		{"empty", "", "", ""},
		{"sorted by name", "prefix=J&max-keys=2", "", "max-keys=2&prefix=J"},
		{"valueless", "lifecycle", "", "lifecycle="},
		{"empty value", "acl=", "", "acl="},
		{"same name sorted by value", "tag=b&tag=a", "", "tag=a&tag=b"},
		{"space as plus or %20", "a=x+y&b=x%20y", "", "a=x%20y&b=x%20y"},
		{"plus encoded", "a=x%2By", "", "a=x%2By"},
		{"slash encoded", "prefix=a/b", "", "prefix=a%2Fb"},
		{"sorted after encoding", "a=a-b&a=a/b", "", "a=a%2Fb&a=a-b"},
		{"tilde kept", "a=%7E", "", "a=~"},
		{"bad escape kept literally", "a=%zz", "", "a=%25zz"},
		{"semicolon is a character", "a=1;b=2", "", "a=1%3Bb%3D2"},
		{"empty parts dropped", "&a=1&&b=2&", "", "a=1&b=2"},
		{"signature skipped", "X-Amz-Signature=abc&X-Amz-Date=1", "X-Amz-Signature", "X-Amz-Date=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := canonicalQuery(parseQuery(tt.raw), tt.skip); got != tt.want {
				t.Fatalf("canonicalQuery = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestTrimAll(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"a", "a"},
		{"  a  ", "a"},
		{"a   b    c", "a b c"},
		{"\ta b\t", "a b"},
		{"a\tb", "a\tb"},
	}
	for _, tt := range tests {
		var b strings.Builder
		trimAll(&b, tt.in)
		if b.String() != tt.want {
			t.Errorf("trimAll(%q) = %q, want %q", tt.in, b.String(), tt.want)
		}
	}
}

func TestKeyCache(t *testing.T) {
	c := NewKeyCache(2)
	want := deriveKey("secret", "20261125", "eu-north-1")
	if got := c.signingKey("secret", "20261125", "eu-north-1"); got != want {
		t.Fatal("cached derivation differs")
	}
	if got := c.signingKey("secret", "20261125", "eu-north-1"); got != want || c.Len() != 1 {
		t.Fatalf("second look-up: len %d", c.Len())
	}
	// Keys for different secrets, days or regions are different, and the
	// cache never grows past its size.
	seen := map[[32]byte]bool{want: true}
	for _, k := range [][3]string{{"secret2", "20261125", "eu-north-1"}, {"secret", "20261126", "eu-north-1"}, {"secret", "20261125", "eu-west-1"},
		{"secre", "t20261125", "eu-north-1"}} {
		got := c.signingKey(k[0], k[1], k[2])
		if got != deriveKey(k[0], k[1], k[2]) || seen[got] {
			t.Fatalf("key for %v wrong or repeated", k)
		}
		seen[got] = true
		if c.Len() > 2 {
			t.Fatalf("cache holds %d keys, size 2", c.Len())
		}
	}
	var nilCache *KeyCache
	if nilCache.signingKey("secret", "20261125", "eu-north-1") != want {
		t.Fatal("nil cache derives wrongly")
	}
	// Concurrent use is safe (run with -race).
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 100 {
				c.signingKey("s", itoa(i), itoa(j))
			}
		})
	}
	wg.Wait()
}

// Verify with a cache gives the same answers as without.
func TestVerifyWithKeyCache(t *testing.T) {
	opt := Options{Keys: NewKeyCache(16)}
	for range 3 {
		if _, err := Verify(signedPut(t), testCreds, testNow, opt); err != nil {
			t.Fatal(err)
		}
	}
	r := signedPut(t)
	r.Header.Set("X-Amz-Meta-Owner", "USA")
	_, err := Verify(r, testCreds, testNow, opt)
	wantCode(t, err, SignatureDoesNotMatch)
	if opt.Keys.Len() != 1 {
		t.Fatalf("cache holds %d keys", opt.Keys.Len())
	}
}
