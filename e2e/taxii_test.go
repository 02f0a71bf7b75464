package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// taxii2ClientScript drives the OASIS TAXII 2.1 client (taxii2client.v21)
// against the node: discovery, API root, collections, add objects and poll
// the status, get objects page by page and with filters, manifest,
// versions, a single object, delete, and a refused wrong password. It exits
// non-zero listing every mismatch and prints "ok" when every step passed.
const taxii2ClientScript = `
import json, os, sys, uuid
sys.path.insert(0, os.environ["TAXII2_CLIENT"])
import requests
from taxii2client.v21 import Server, as_pages

url = os.environ["E2E_ENDPOINT"] + "/_embassy/taxii2/"
user, password = os.environ["E2E_ACCESS_KEY"], os.environ["E2E_SECRET_KEY"]
GREEN = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"
RED = "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1"
failures = []
def check(cond, what):
    if not cond:
        failures.append(what)

srv = Server(url, user=user, password=password)
check(srv.title.startswith("embassy node"), "discovery title %r" % srv.title)
check(len(srv.api_roots) == 1 and srv.default is not None, "api roots %r, default %r" % (srv.api_roots, srv.default))
root = srv.default
check(root.versions == ["application/taxii+json;version=2.1"], "versions %r" % root.versions)
check(root.max_content_length > 0, "max_content_length %r" % root.max_content_length)
cols = [c for c in root.collections if c.alias == "cti"]
check(len(cols) == 1, "collections %r" % [c.alias for c in root.collections])
col = cols[0]
check(col.can_read and col.can_write, "can_read %r can_write %r" % (col.can_read, col.can_write))

def indicator(i, modified="2026-03-02T08:00:00.000Z", marking=GREEN, oid=None):
    return {"type": "indicator", "spec_version": "2.1", "id": oid or "indicator--" + str(uuid.uuid4()),
            "created": "2026-03-02T08:00:00.000Z", "modified": modified, "name": "C2 address %d" % i,
            "pattern": "[ipv4-addr:value = '198.51.100.%d']" % i, "pattern_type": "stix",
            "valid_from": "2026-03-02T08:00:00Z", "object_marking_refs": [marking]}

objs = [indicator(i) for i in range(25)]
twice = objs[0]["id"]
objs.append(indicator(0, modified="2026-03-03T08:00:00.000Z", oid=twice))
objs.append({"type": "malware", "spec_version": "2.1", "id": "malware--" + str(uuid.uuid4()),
             "created": "2026-03-02T09:00:00.000Z", "modified": "2026-03-02T09:00:00.000Z",
             "name": "TallinnLoader", "is_family": True, "object_marking_refs": [GREEN]})
red = indicator(99, marking=RED)
objs.append(red)
objs.append({"type": "indicator", "spec_version": "2.0", "id": "indicator--" + str(uuid.uuid4())})
st = col.add_objects(json.dumps({"objects": objs}), wait_for_completion=True, poll_interval=0.2, timeout=60)
check(st.status == "complete", "status %r" % st.status)
check(st.total_count == 29 and st.success_count == 27 and st.failure_count == 2,
      "counts total %d success %d failure %d" % (st.total_count, st.success_count, st.failure_count))
why = {f["id"]: f.get("message", "") for f in st.failures}
check("TLP:RED" in why.get(red["id"], ""), "RED object not refused for a principal without TLP: RED: %r" % why)
check(any("spec_version" in m for m in why.values()), "STIX 2.0 object not refused with its reason: %r" % why)
again = root.get_status(st.id)
check(again.status == "complete" and again.success_count == 27, "get_status %r" % again._raw)

ids, pages = [], 0
for env in as_pages(col.get_objects, per_request=10):
    pages += 1
    ids += [o["id"] for o in env.get("objects", [])]
check(pages == 3, "%d pages of 10 for 26 objects" % pages)
check(len(ids) == 26 and len(set(ids)) == 26, "paged through %d objects (%d distinct), want 26" % (len(ids), len(set(ids))))
check(red["id"] not in ids, "the refused RED object is listed")

mal = col.get_objects(type="malware")
check([o["type"] for o in mal.get("objects", [])] == ["malware"], "match[type]=malware %r" % mal)
one = col.get_objects(id=twice)
check(len(one["objects"]) == 1 and one["objects"][0]["modified"] == "2026-03-03T08:00:00.000Z", "match[id] gives the last version: %r" % one)
allv = col.get_objects(id=twice, version="all")
check(len(allv["objects"]) == 2, "match[version]=all: %d versions" % len(allv["objects"]))
first = col.get_object(twice, version="first")
check(first["objects"][0]["modified"] == "2026-03-02T08:00:00.000Z", "get_object version=first %r" % first)
vers = col.object_versions(twice)
check(len(vers["versions"]) == 2, "object_versions %r" % vers)
man = col.get_manifest(type="indicator")
check(len(man["objects"]) == 25 and all(m["media_type"].startswith("application/stix+json") for m in man["objects"]),
      "manifest: %d entries" % len(man["objects"]))
check(all(o["object_marking_refs"] == [GREEN] for o in col.get_objects(limit=1000)["objects"]), "markings changed")
later = col.get_objects(added_after=man["objects"][-1]["date_added"])
check(len(later.get("objects", [])) < 26, "added_after did not filter")

col.delete_object(twice)
try:
    col.get_object(twice)
    check(False, "a deleted object is still there")
except requests.exceptions.HTTPError as e:
    check(e.response.status_code == 404, "get of a deleted object: %d" % e.response.status_code)

bad = Server(url, user=user, password=password + "x")
try:
    bad.title
    check(False, "a wrong password was accepted")
except requests.exceptions.HTTPError as e:
    check(e.response.status_code == 401, "wrong password: %d" % e.response.status_code)

if failures:
    sys.exit("taxii2-client saw differences:\n" + "\n".join(failures))
print("ok")
`

// taxii2ClientDir finds the OASIS taxii2-client: $EMBASSY_TAXII2_CLIENT,
// else ../shared/interop/taxii2-client beside the repository (.ci/run
// fetches it there when missing).
func taxii2ClientDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("EMBASSY_TAXII2_CLIENT"); d != "" {
		return d
	}
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(filepath.Dir(strings.TrimSpace(string(gomod))), "..", "shared", "interop", "taxii2-client")
}

// TestTAXII2Client: the OASIS taxii2-client against a real 'embassy serve
// --dev' whose collection was made with 'embassy taxii collection create'.
func TestTAXII2Client(t *testing.T) {
	dir := taxii2ClientDir(t)
	if _, err := os.Stat(filepath.Join(dir, "taxii2client", "v21", "__init__.py")); err != nil {
		missing(t, "the OASIS taxii2-client ("+dir+"; set EMBASSY_TAXII2_CLIENT)")
	}
	if _, err := os.Stat(debianPython); err != nil {
		missing(t, "python3")
	}
	if out, err := exec.Command(debianPython, "-c", "import requests, six, pytz").CombinedOutput(); err != nil {
		missing(t, "python3-requests, python3-six and python3-tz ("+strings.TrimSpace(string(out))+")")
	}
	s := startServerWith(t, func(data string) {
		for _, args := range [][]string{
			{"vault", "create", "intel", "--erasure", "4+2"},
			{"taxii", "collection", "create", "cti", "--vault", "intel", "--title", "Incidents"},
		} {
			cmd := exec.Command(embassyBin, append([]string{"--dir", data}, args...)...)
			cmd.Env = cleanEnv()
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("embassy %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
	})
	cmd := exec.Command(debianPython, "-c", taxii2ClientScript)
	cmd.Env = append(cleanEnv(), "TAXII2_CLIENT="+dir, "E2E_ENDPOINT="+s.endpoint, "E2E_ACCESS_KEY="+s.accessKey, "E2E_SECRET_KEY="+s.secretKey)
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("taxii2-client: %v\n%s", err, out)
	}
}
