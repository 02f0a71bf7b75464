package taxii

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestParseEnvelope(t *testing.T) {
	good := []struct {
		body    string
		objects int
	}{
		{`{"objects":[{"type":"x"},{"type":"y"}]}`, 2},
		{`{"more":false,"objects":[{"a":1}],"next":"n","custom":{"x":[1]}}`, 1},
		{`{}`, 0},
		{`{"objects":null}`, 0},
		{` {"objects":[]} `, 0},
	}
	for _, c := range good {
		env, err := ParseEnvelope([]byte(c.body), 10)
		if err != nil || len(env.Objects) != c.objects {
			t.Errorf("%s: %v, %d objects", c.body, err, len(env.Objects))
		}
	}
	bad := []struct{ body, want string }{
		{``, "not JSON"},
		{`[]`, "not a JSON object"},
		{`{"objects":{}}`, "objects: not a list"},
		{`{"objects":[1]}`, "objects[0]: not a JSON object"},
		{`{"objects":[{"a":1},"x"]}`, "objects[1]: not a JSON object"},
		{`{"objects":[{"a":}]}`, "not JSON"},
		{`{"objects":[],"objects":[{"a":1}]}`, `"objects" given twice`},
		{`{"more":"yes"}`, "more: not a boolean"},
		{`{"objects":[]} {}`, "more than one JSON value"},
		{`{"objects":[{},{},{}]}`, "more than 2 objects"},
	}
	for _, c := range bad {
		_, err := ParseEnvelope([]byte(c.body), 2)
		if err == nil || !errors.Is(err, ErrEnvelope) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.body, err, c.want)
		}
	}
}

func TestParseFilter(t *testing.T) {
	all := paramAddedAfter | paramLimit | paramNext | paramID | paramType | paramVersion | paramSpecVersion
	q := func(s string) url.Values {
		v, err := url.ParseQuery(s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	f, err := ParseFilter(q("added_after=2026-03-02T08:30:00.5Z&limit=5000&match[type]=indicator,malware&match[type]=report&match[id]=indicator--830b74d3-00d1-4c74-804b-a83ae16031a8&match[version]=first,2026-03-02T08:30:00.000Z&match[spec_version]=2.1&next=abc&other=1"), all)
	if err != nil {
		t.Fatal(err)
	}
	if !f.AddedAfter.Equal(time.Date(2026, 3, 2, 8, 30, 0, 5e8, time.UTC)) || f.Limit != MaxLimit || f.Next != "abc" ||
		strings.Join(f.Types, ",") != "indicator,malware,report" || len(f.IDs) != 1 || !f.Version.First || len(f.Version.Times) != 1 || f.Version.Last ||
		strings.Join(f.SpecVersions, ",") != "2.1" {
		t.Errorf("parsed %+v", f)
	}
	if f, _ := ParseFilter(q(""), all); f.Limit != DefaultLimit || !f.Version.effective().Last {
		t.Errorf("defaults %+v", f)
	}
	if f, _ := ParseFilter(q("limit=0"), all); f.Limit != DefaultLimit {
		t.Errorf("limit=0 (what taxii2-client's as_pages sends first) gives %d", f.Limit)
	}
	bad := []struct {
		query   string
		allowed int
		want    string
	}{
		{"added_after=yesterday", all, "added_after"},
		{"added_after=2026-03-02T08:30:00+01:00", all, "added_after"},
		{"added_after=2026-03-02T08:30:00Z&added_after=2026-03-02T08:30:00Z", all, "added_after given 2 times"},
		{"limit=-1", all, "limit"},
		{"limit=ten", all, "limit"},
		{"match[id]=indicator--x", all, "match[id]"},
		{"match[type]=Indicator", all, "match[type]"},
		{"match[type]=a,,b", all, "an empty value"},
		{"match[version]=newest", all, "match[version]"},
		{"match[spec_version]=2.2", all, "match[spec_version]"},
		{"match[color]=red", all, "match[color] is not a filter embassy supports"},
		{"match[type]=indicator", paramAddedAfter | paramVersion, "match[type] is not supported by this endpoint"},
		{"next=", all, "next"},
		{"match[type]=" + manyTypes(101), all, "more than 100 values"},
	}
	for _, c := range bad {
		_, err := ParseFilter(q(c.query), c.allowed)
		if err == nil || !errors.Is(err, ErrFilter) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.query, err, c.want)
		}
	}
}

func manyTypes(n int) string {
	var ts []string
	for i := range n {
		ts = append(ts, "t"+strings.Repeat("a", 2+i))
	}
	return strings.Join(ts, ",")
}
