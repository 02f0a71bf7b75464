package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/embassy-dev/embassy/vault"
)

// 'embassy config edit' changes node.yaml as a whole: the proposed file is
// validated (errors name the line), compared with the configuration in
// force field by field (ConfigChanges), and either applied at once,
// authenticated as the next generation, or — when a change needs
// custodians — turned into one two-person request (kind config.edit) that
// carries the proposed file's SHA-256. The proposed file waits in the node
// directory (node.yaml.proposed-<hash>) until custodians decide.

// ParseConfigLines is ParseConfig with validation errors that also name
// the line of node.yaml they concern ("line 23: vaults[1].erasure: ...").
func ParseConfigLines(b []byte) (*Config, error) {
	c, err := ParseConfig(b)
	if err == nil {
		return c, nil
	}
	msg := strings.TrimPrefix(err.Error(), "config: ")
	if strings.HasPrefix(msg, "yaml:") || strings.HasPrefix(msg, "line ") {
		return nil, err // the YAML decoder names the line itself
	}
	if line := lineOf(b, msg); line > 0 {
		return nil, fmt.Errorf("config: line %d: %s", line, msg)
	}
	return nil, err
}

var (
	pathToken = regexp.MustCompile(`^([a-z0-9_]+)((?:\[[0-9]+\])*)`)
	indexes   = regexp.MustCompile(`[0-9]+`)
)

// lineOf finds the line of the node.yaml field that a validation message
// starts with ("vaults[1].erasure: ...", "s3.credentials[0].access_key: ...").
func lineOf(b []byte, msg string) int {
	var doc yaml.Node
	if yaml.Unmarshal(b, &doc) != nil || len(doc.Content) == 0 {
		return 0
	}
	path, rest, _ := strings.Cut(msg, ":")
	path, _, _ = strings.Cut(path, " ")
	path, _, _ = strings.Cut(path, ",")
	node := doc.Content[0]
	line := 0
	for part := range strings.SplitSeq(path, ".") {
		m := pathToken.FindStringSubmatch(part)
		if m == nil || node.Kind != yaml.MappingNode {
			break
		}
		var next *yaml.Node
		for i := 0; i+1 < len(node.Content); i += 2 {
			if node.Content[i].Value == m[1] {
				next = node.Content[i+1]
				line = node.Content[i].Line
			}
		}
		if next == nil {
			break
		}
		node = next
		for _, idx := range indexes.FindAllString(m[2], -1) {
			i, _ := strconv.Atoi(idx)
			if node.Kind != yaml.SequenceNode || i >= len(node.Content) {
				return line
			}
			node = node.Content[i]
			line = node.Line
		}
	}
	// "vaults[1] (registry): erasure ...": the message names a field of
	// the element.
	if word, _, _ := strings.Cut(strings.TrimSpace(rest), " "); node.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(node.Content); i += 2 {
			if node.Content[i].Value == word {
				return node.Content[i].Line
			}
		}
	}
	return line
}

// EditResult says what a proposed node.yaml did.
type EditResult struct {
	Changes []Change `json:"changes"`
	// Applied: the file is in force, as Generation of node.yaml.
	Applied    bool   `json:"applied"`
	Generation uint64 `json:"generation,omitempty"`
	// RequestID names the two-person request that waits for custodians
	// (Applied is then false).
	RequestID string `json:"request_id,omitempty"`
	Needed    int    `json:"needed,omitempty"`
}

// ErrRefusedChange: a proposed node.yaml changes what config edit never
// changes; the message names the field and the command that does.
var ErrRefusedChange = errors.New("node.yaml change refused")

// CurrentConfigBody returns node.yaml as in force, without its
// authenticator line: what an edit starts from.
func (n *Node) CurrentConfigBody() ([]byte, error) {
	f, err := n.loadVerified(ConfigFile)
	if err != nil {
		return nil, err
	}
	if f == nil {
		return nil, fmt.Errorf("%s is missing", ConfigFile)
	}
	return f.body, nil
}

func proposalPath(dir, sum string) string {
	return filepath.Join(dir, ConfigFile+".proposed-"+sum[:16])
}

// ProposeConfig proposes body as the new node.yaml. Changes that need no
// custodians are applied at once; otherwise one two-person request is made
// for the whole file and its id returned; changes never allowed are
// refused. A body with no change at all is a no-op.
func (n *Node) ProposeConfig(ctx context.Context, body []byte) (EditResult, error) {
	if err := n.Ready(); err != nil {
		return EditResult{}, err
	}
	if len(body) > 0 && body[len(body)-1] != '\n' {
		body = append(bytes.Clone(body), '\n')
	}
	if f, err := splitNodeFile(ConfigFile, body); err == nil && f.mac != nil {
		// An authenticator line copied with the file: what counts is the body.
		body = f.body
	}
	cur, err := n.CurrentConfigBody()
	if err != nil {
		return EditResult{}, err
	}
	// Markers of 'config show' (GET v1/config) stand for the secrets in
	// force they name.
	if body, err = UnredactConfig(cur, body); err != nil {
		return EditResult{}, err
	}
	c, err := ParseConfigLines(body)
	if err != nil {
		return EditResult{}, err
	}
	res := EditResult{Changes: ConfigChanges(n.Config, c)}
	if bytes.Equal(cur, body) {
		return res, nil
	}
	if err := n.checkChanges(ctx, res.Changes); err != nil {
		return res, err
	}
	var gated []string
	for _, ch := range res.Changes {
		if ch.Gate == Custodians {
			gated = append(gated, ch.Text)
		}
	}
	if len(gated) > 0 {
		sum := sha256.Sum256(body)
		hexSum := hex.EncodeToString(sum[:])
		if err := writeFileAtomic(proposalPath(n.Dir, hexSum), body); err != nil {
			return res, err
		}
		summary := "edit node.yaml: " + strings.Join(gated, "; ")
		if others := len(res.Changes) - len(gated); others > 0 {
			summary += fmt.Sprintf(" (and %d change(s) that need no custodians)", others)
		}
		err := n.Require(ctx, vault.Operation{Kind: "config.edit", Summary: summary,
			Params: map[string]string{"sha256": hexSum, "base_generation": strconv.FormatUint(n.configGen(), 10)}})
		if pe, ok := errors.AsType[*vault.PendingError](err); ok {
			res.RequestID, res.Needed = pe.RequestID, pe.Needed
			return res, err
		}
		if err != nil {
			os.Remove(proposalPath(n.Dir, hexSum))
			return res, err
		}
		os.Remove(proposalPath(n.Dir, hexSum))
	}
	if err := n.applyConfig(c, body); err != nil {
		return res, err
	}
	res.Applied, res.Generation = true, n.configGen()
	return res, nil
}

// checkChanges refuses what config edit never does, and removing a vault
// that still holds versions.
func (n *Node) checkChanges(ctx context.Context, changes []Change) error {
	var refused []string
	for _, ch := range changes {
		if ch.Gate == Refused {
			refused = append(refused, ch.Text+": "+ch.Why)
		}
	}
	if len(refused) > 0 {
		return fmt.Errorf("%w: %s", ErrRefusedChange, strings.Join(refused, "; "))
	}
	for _, ch := range changes {
		name, ok := strings.CutPrefix(ch.Field, "vaults[")
		if !ok || !strings.HasSuffix(ch.Text, " removed") {
			continue
		}
		name = strings.TrimSuffix(name, "]")
		empty, err := n.Index.VaultEmpty(ctx, name)
		if err != nil {
			return err
		}
		if !empty {
			return fmt.Errorf("%w: vault %s: %w (delete its objects first)", ErrRefusedChange, name, ErrVaultNotEmpty)
		}
	}
	return nil
}

func (n *Node) configGen() uint64 {
	n.genMu.Lock()
	defer n.genMu.Unlock()
	return n.gens[ConfigFile]
}

// applyConfig puts c in force (an engine is built from it first, so an
// infeasible policy or an unreachable site is refused) and saves body,
// exactly, as the next generation of node.yaml.
func (n *Node) applyConfig(c *Config, body []byte) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	old := n.Config
	// A guest hosted by this edit gets its store, as 'host add' makes it.
	for _, g := range c.Alliance.Guests {
		if !slices.ContainsFunc(old.Alliance.Guests, func(x GuestConfig) bool { return x.Node == g.Node }) {
			if err := n.makeGuestStore(c, g.Node); err != nil {
				return err
			}
		}
	}
	n.setConfig(c)
	if err := n.rebuildEngine(); err != nil {
		n.setConfig(old)
		n.rebuildEngine()
		return err
	}
	if err := n.saveConfigBytes(body); err != nil {
		n.setConfig(old)
		n.rebuildEngine()
		return err
	}
	return nil
}

// executeConfigEdit carries out an approved config.edit request: the
// proposed file must be the one approved (its SHA-256) and node.yaml still
// the generation it was proposed against.
func (n *Node) executeConfigEdit(ctx context.Context, p map[string]string) error {
	sum := p["sha256"]
	if len(sum) != 64 {
		return errors.New("config.edit: malformed request")
	}
	path := proposalPath(n.Dir, sum)
	body, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config.edit: the proposed node.yaml: %w", err)
	}
	if got := sha256.Sum256(body); hex.EncodeToString(got[:]) != sum {
		return fmt.Errorf("config.edit: %s is not the file the custodians approved", path)
	}
	if base := strconv.FormatUint(n.configGen(), 10); base != p["base_generation"] {
		return fmt.Errorf("config.edit: node.yaml changed since the edit was proposed (generation %s, proposed against %s): propose it again", base, p["base_generation"])
	}
	c, err := ParseConfigLines(body)
	if err != nil {
		return err
	}
	if err := n.checkChanges(ctx, ConfigChanges(n.Config, c)); err != nil {
		return err
	}
	if err := n.applyConfig(c, body); err != nil {
		return err
	}
	os.Remove(path)
	return nil
}
