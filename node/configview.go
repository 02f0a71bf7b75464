package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"go.yaml.in/yaml/v3"
)

// node.yaml through the admin API: GET v1/config shows the file in force
// with every secret replaced by a marker that names it (a secret never
// leaves the node), and PUT v1/config proposes a new file, which is
// ProposeConfig's: the offline 'embassy config edit' and the remote one
// are one implementation. A marker in a proposed file stands for the
// secret it names, kept only where it was (the same credential, the same
// site endpoint, the same sync URL); a new secret is written in clear.

// RedactedPrefix starts every redaction marker.
const RedactedPrefix = "embassy-redacted:"

// ErrBadMarker: a proposed node.yaml has a redaction marker that names no
// secret of the file in force, or stands where that secret cannot go.
var ErrBadMarker = errors.New("redaction marker refused")

// secretField is one secret of node.yaml: where it is in the YAML tree,
// what marker names it, its value, and where a kept secret may go.
type secretField struct {
	node   *yaml.Node // the scalar
	path   string     // "s3.credentials[1].secret_key"
	marker string
	value  string
	// dest is where the secret is used (an S3 site's endpoint, a sync
	// job's URL): a marker is honoured only while it stays the same.
	dest string
}

// mapValue returns the value node of key in mapping m.
func mapValue(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func scalar(n *yaml.Node) string {
	if n == nil || n.Kind != yaml.ScalarNode {
		return ""
	}
	return n.Value
}

// secretFields finds node.yaml's secrets in doc: s3.credentials[].secret_key
// (named by access key), sites[].s3.secret_key (by site id) and
// taxii.sync[].password (by job name).
func secretFields(doc *yaml.Node) []secretField {
	if doc == nil || doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil
	}
	root := doc.Content[0]
	var out []secretField
	each := func(seq *yaml.Node, fn func(i int, item *yaml.Node)) {
		if seq == nil || seq.Kind != yaml.SequenceNode {
			return
		}
		for i, item := range seq.Content {
			fn(i, item)
		}
	}
	add := func(n *yaml.Node, path, marker, dest string) {
		if n != nil && n.Kind == yaml.ScalarNode {
			out = append(out, secretField{node: n, path: path, marker: RedactedPrefix + marker, value: n.Value, dest: dest})
		}
	}
	each(mapValue(mapValue(root, "s3"), "credentials"), func(i int, c *yaml.Node) {
		add(mapValue(c, "secret_key"), fmt.Sprintf("s3.credentials[%d].secret_key", i), "s3.credentials/"+scalar(mapValue(c, "access_key")), "")
	})
	each(mapValue(root, "sites"), func(i int, s *yaml.Node) {
		s3 := mapValue(s, "s3")
		add(mapValue(s3, "secret_key"), fmt.Sprintf("sites[%d].s3.secret_key", i), "sites/"+scalar(mapValue(s, "id"))+"/s3", scalar(mapValue(s3, "endpoint")))
	})
	each(mapValue(mapValue(root, "taxii"), "sync"), func(i int, s *yaml.Node) {
		add(mapValue(s, "password"), fmt.Sprintf("taxii.sync[%d].password", i), "taxii.sync/"+scalar(mapValue(s, "name")), scalar(mapValue(s, "url")))
	})
	return out
}

// ClearSecrets returns where a node.yaml body holds a secret written in
// clear rather than as a redaction marker (the secret a proposal carries
// across the wire): s3.credentials[0].secret_key and the like, in order.
// Empty secrets are not counted.
func ClearSecrets(body []byte) ([]string, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	var out []string
	for _, f := range secretFields(&doc) {
		if f.value != "" && !strings.HasPrefix(f.value, RedactedPrefix) {
			out = append(out, f.path)
		}
	}
	return out, nil
}

// lineStarts returns the byte offset of each line of b (index 0: line 1).
func lineStarts(b []byte) []int {
	starts := []int{0}
	for i, c := range b {
		if c == '\n' {
			starts = append(starts, i+1)
		}
	}
	return starts
}

// scalarSpan returns the bytes of b that hold scalar n as written: a plain
// scalar on one line or a single- or double-quoted one. ok is false for
// any other form (a block scalar, a plain scalar over several lines).
func scalarSpan(b []byte, starts []int, n *yaml.Node) (int, int, bool) {
	if n.Line < 1 || n.Line > len(starts) || n.Column < 1 {
		return 0, 0, false
	}
	start := starts[n.Line-1] + n.Column - 1
	if start >= len(b) {
		return 0, 0, false
	}
	end := -1
	switch n.Style {
	case 0:
		if !strings.ContainsAny(n.Value, "\n") && bytes.HasPrefix(b[start:], []byte(n.Value)) {
			end = start + len(n.Value)
		}
	case yaml.DoubleQuotedStyle:
		for i := start + 1; i < len(b) && b[i] != '\n'; i++ {
			if b[i] == '\\' {
				i++
				continue
			}
			if b[i] == '"' {
				end = i + 1
				break
			}
		}
	case yaml.SingleQuotedStyle:
		for i := start + 1; i < len(b) && b[i] != '\n'; i++ {
			if b[i] == '\'' {
				if i+1 < len(b) && b[i+1] == '\'' {
					i++
					continue
				}
				end = i + 1
				break
			}
		}
	}
	if end < 0 {
		return 0, 0, false
	}
	// What the span holds must decode to the scalar's value.
	var v string
	if yaml.Unmarshal(b[start:end], &v) != nil || v != n.Value {
		return 0, 0, false
	}
	return start, end, true
}

// splice replaces spans of b (sorted, not overlapping) with texts.
type span struct {
	start, end int
	text       []byte
}

func splice(b []byte, spans []span) []byte {
	var out bytes.Buffer
	at := 0
	for _, s := range spans {
		out.Write(b[at:s.start])
		out.Write(s.text)
		at = s.end
	}
	out.Write(b[at:])
	return out.Bytes()
}

// RedactConfig returns node.yaml body with every secret replaced by the
// marker that names it, the rest of the file unchanged. The result is
// checked: each secret field of it holds its marker.
func RedactConfig(body []byte) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	fields := secretFields(&doc)
	starts := lineStarts(body)
	var spans []span
	reencode := false
	for _, f := range fields {
		s, e, ok := scalarSpan(body, starts, f.node)
		if !ok {
			reencode = true
			break
		}
		spans = append(spans, span{s, e, []byte(f.marker)})
	}
	var out []byte
	if reencode {
		// A secret written in a form that cannot be replaced in place:
		// the file is shown re-encoded instead.
		for _, f := range fields {
			f.node.Value, f.node.Style, f.node.Tag = f.marker, 0, "!!str"
		}
		var err error
		if out, err = yaml.Marshal(&doc); err != nil {
			return nil, err
		}
	} else {
		out = splice(body, spans)
	}
	// Checked on what is shown: every secret field holds its marker, and
	// there are as many as there were secrets.
	var check yaml.Node
	if err := yaml.Unmarshal(out, &check); err != nil {
		return nil, fmt.Errorf("config: redacting: %w", err)
	}
	shown := secretFields(&check)
	if len(shown) != len(fields) {
		return nil, errors.New("config: redacting changed the file's secrets")
	}
	for i, f := range shown {
		if f.node.Value != f.marker || f.marker != fields[i].marker {
			return nil, fmt.Errorf("config: %s could not be redacted", f.path)
		}
	}
	return out, nil
}

// UnredactConfig returns proposed with each redaction marker replaced by
// the secret it names in current (as written there). A marker is honoured
// only in the place of the secret it names — the same credential's
// secret_key, the same site's s3.secret_key with the same endpoint, the
// same sync job's password with the same URL — so that a kept secret is
// never sent anywhere new; any other marker is refused with ErrBadMarker,
// naming the line. A file without markers is returned as it is.
func UnredactConfig(current, proposed []byte) ([]byte, error) {
	if !bytes.Contains(proposed, []byte(RedactedPrefix)) {
		return proposed, nil
	}
	var pdoc, cdoc yaml.Node
	if err := yaml.Unmarshal(proposed, &pdoc); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := yaml.Unmarshal(current, &cdoc); err != nil {
		return nil, fmt.Errorf("config: the node.yaml in force: %w", err)
	}
	cur := map[string]secretField{}
	for _, f := range secretFields(&cdoc) {
		cur[f.marker] = f
	}
	cstarts, pstarts := lineStarts(current), lineStarts(proposed)
	secretAt := map[*yaml.Node]secretField{}
	for _, f := range secretFields(&pdoc) {
		secretAt[f.node] = f
	}
	var spans []span
	var walk func(n *yaml.Node) error
	walk = func(n *yaml.Node) error {
		if n == nil {
			return nil
		}
		if n.Kind == yaml.ScalarNode && strings.HasPrefix(n.Value, RedactedPrefix) {
			f, isSecret := secretAt[n]
			if !isSecret {
				return fmt.Errorf("%w: line %d: %q stands for a secret and is accepted only as the secret it names", ErrBadMarker, n.Line, n.Value)
			}
			c, ok := cur[n.Value]
			if !ok {
				return fmt.Errorf("%w: line %d: %s: %q names no secret of the node.yaml in force; write the secret in clear", ErrBadMarker, n.Line, f.path, n.Value)
			}
			if n.Value != f.marker {
				return fmt.Errorf("%w: line %d: %s: %q is another entry's secret; a kept secret stays where it was: write this one in clear", ErrBadMarker, n.Line, f.path, n.Value)
			}
			if c.dest != f.dest {
				return fmt.Errorf("%w: line %d: %s: where the secret is used changed (%q, was %q); write the secret in clear: a kept secret is not sent anywhere new", ErrBadMarker, n.Line, f.path, f.dest, c.dest)
			}
			ps, pe, ok := scalarSpan(proposed, pstarts, n)
			if !ok {
				return fmt.Errorf("%w: line %d: %s: write the marker as it was shown, on one line", ErrBadMarker, n.Line, f.path)
			}
			text := []byte(nil)
			if cs, ce, ok := scalarSpan(current, cstarts, c.node); ok {
				text = current[cs:ce]
			} else {
				q, err := yaml.Marshal(c.value)
				if err != nil {
					return err
				}
				text = bytes.TrimSuffix(q, []byte("\n"))
				if bytes.ContainsRune(text, '\n') {
					return fmt.Errorf("%w: line %d: %s: the secret in force spans lines; write it in clear", ErrBadMarker, n.Line, f.path)
				}
			}
			spans = append(spans, span{ps, pe, text})
			return nil
		}
		for _, c := range n.Content {
			if err := walk(c); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(&pdoc); err != nil {
		return nil, err
	}
	if len(spans) == 0 {
		// The prefix is in a comment or inside a longer text.
		return proposed, nil
	}
	sortSpans(spans)
	return splice(proposed, spans), nil
}

func sortSpans(s []span) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j].start < s[j-1].start; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// ConfigView is node.yaml as GET v1/config and 'embassy config show'
// give it: redacted, with its generation.
type ConfigView struct {
	Generation uint64 `json:"generation"`
	// Body is node.yaml in force without its authenticator line, every
	// secret replaced by a marker (embassy-redacted:…).
	Body string `json:"body"`
}

// ShowConfig returns node.yaml in force, redacted.
func (n *Node) ShowConfig() (ConfigView, error) {
	body, err := n.CurrentConfigBody()
	if err != nil {
		return ConfigView{}, err
	}
	gen := n.configGen()
	red, err := RedactConfig(body)
	if err != nil {
		return ConfigView{}, err
	}
	return ConfigView{Generation: gen, Body: string(red)}, nil
}

// ConfigProposal is PUT v1/config's body.
type ConfigProposal struct {
	// Body is the proposed node.yaml; markers from GET v1/config keep the
	// secrets they name.
	Body string `json:"body"`
	// BaseGeneration, if not zero, is the generation the edit started
	// from: the proposal is refused (conflict) if node.yaml has changed
	// since, instead of undoing the other change.
	BaseGeneration uint64 `json:"base_generation,omitempty"`
}

// ParseConfigProposal parses PUT v1/config.
func ParseConfigProposal(body []byte) (ConfigProposal, error) {
	var p ConfigProposal
	if err := decodeStrict(body, &p); err != nil {
		return p, err
	}
	if strings.TrimSpace(p.Body) == "" {
		return p, errors.New("config: body is empty; send the proposed node.yaml in \"body\"")
	}
	return p, nil
}

// ErrConfigMoved: node.yaml changed since the edit started.
var ErrConfigMoved = errors.New("node.yaml changed since the edit started")

// ProposeConfigFrom is ProposeConfig for a proposal that started from
// generation base of node.yaml (0: whichever is in force).
func (n *Node) ProposeConfigFrom(ctx context.Context, body []byte, base uint64) (EditResult, error) {
	if base != 0 {
		if gen := n.configGen(); gen != base {
			return EditResult{}, fmt.Errorf("%w (generation %d in force, the edit started from %d): fetch it again and redo the edit", ErrConfigMoved, gen, base)
		}
	}
	return n.ProposeConfig(ctx, body)
}

// ConfigEditAnswer is PUT v1/config's answer: what the edit did and, if
// it did not apply, why (as OpError).
type ConfigEditAnswer struct {
	EditResult
	Error string `json:"error,omitempty"`
	Code  string `json:"code,omitempty"`
}

func (n *Node) adminConfigShow(w http.ResponseWriter, r *http.Request, _ *adminCall) {
	v, err := n.ShowConfig()
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, OpError{Error: err.Error(), Code: "internal"})
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (n *Node) adminConfigPropose(w http.ResponseWriter, r *http.Request, c *adminCall) {
	p, err := ParseConfigProposal(c.body)
	if err != nil {
		opFail(w, err)
		return
	}
	res, err := n.ProposeConfigFrom(c.as(r), []byte(p.Body), p.BaseGeneration)
	if err != nil {
		if errors.Is(err, ErrConfigMoved) {
			err = tagged{err, errExists}
		}
		status, code := opStatus(err)
		writeJSON(w, status, ConfigEditAnswer{EditResult: res, Error: err.Error(), Code: code})
		return
	}
	writeJSON(w, http.StatusOK, ConfigEditAnswer{EditResult: res})
}
