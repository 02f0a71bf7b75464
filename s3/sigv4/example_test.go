package sigv4_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/embassy-dev/embassy/s3/sigv4"
)

type keys map[string]string

func (k keys) Secret(accessKey string) (string, bool) {
	s, ok := k[accessKey]
	return s, ok
}

// A server verifies a request, then reads its body through Auth.Body and
// trusts what it read only once Read has returned io.EOF. The request is
// the "PUT Object" example of the S3 API reference.
func Example() {
	creds := keys{"AKIAIOSFODNN7EXAMPLE": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}
	now := time.Date(2013, 5, 24, 0, 5, 0, 0, time.UTC)

	r := httptest.NewRequest("PUT", "http://examplebucket.s3.amazonaws.com/test$file.text", strings.NewReader("Welcome to Amazon S3."))
	r.Header.Set("Date", "Fri, 24 May 2013 00:00:00 GMT")
	r.Header.Set("X-Amz-Date", "20130524T000000Z")
	r.Header.Set("X-Amz-Storage-Class", "REDUCED_REDUNDANCY")
	r.Header.Set("X-Amz-Content-Sha256", "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072")
	r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"+
		"SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,"+
		"Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd")

	a, err := sigv4.Verify(r, creds, now, sigv4.Options{Region: "us-east-1"})
	if err != nil {
		e, _ := errors.AsType[*sigv4.Error](err)
		fmt.Println(e.Status(), e.Code, e.Message)
		return
	}
	body, err := io.ReadAll(a.Body(r.Body))
	if err != nil {
		fmt.Println("discard the upload:", err)
		return
	}
	fmt.Printf("%s stored %q\n", a.AccessKey, body)

	// The same request a quarter of an hour later is a replay S3 refuses.
	_, err = sigv4.Verify(r, creds, now.Add(15*time.Minute), sigv4.Options{})
	e, _ := errors.AsType[*sigv4.Error](err)
	fmt.Println(e.Status(), e.Code)

	// A request with no authentication at all is told apart.
	_, err = sigv4.Verify(httptest.NewRequest("GET", "http://examplebucket.s3.amazonaws.com/test.txt", nil), creds, now, sigv4.Options{})
	fmt.Println(errors.Is(err, sigv4.ErrAnonymous), err.(*sigv4.Error).Status() == http.StatusForbidden)
	// Output:
	// AKIAIOSFODNN7EXAMPLE stored "Welcome to Amazon S3."
	// 403 RequestTimeTooSkewed
	// true true
}
