package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"sync"

	"github.com/embassy-dev/embassy/internal/httpguard"
	"github.com/embassy-dev/embassy/label"
	"github.com/embassy-dev/embassy/taxii"
)

// TAXIIFile is the TAXII secondary index (a cache of the collections'
// metadata) and the status resources, in the node directory.
const TAXIIFile = "taxii.db"

// taxiiState is the node's TAXII store, opened on first use.
type taxiiState struct {
	mu    sync.Mutex
	index *taxii.Index
	store *taxii.Store
}

// TAXII returns the node's TAXII store, opening taxii.db on first use. The
// node must be unsealed.
func (n *Node) TAXII() (*taxii.Store, error) {
	if err := n.Ready(); err != nil {
		return nil, err
	}
	n.taxii.mu.Lock()
	defer n.taxii.mu.Unlock()
	if n.taxii.store != nil {
		return n.taxii.store, nil
	}
	ix, err := taxii.OpenIndex(filepath.Join(n.Dir, TAXIIFile))
	if err != nil {
		return nil, err
	}
	n.taxii.index = ix
	n.taxii.store = taxii.NewStore(taxii.StoreConfig{
		Engine: n.Engine, Index: ix, Registry: n.Labels, Tokens: nodeTokens{n}, Logger: n.Log,
		Config:  n.taxiiConfig,
		Nations: n.nations,
	})
	return n.taxii.store, nil
}

// closeTAXII closes taxii.db if it is open.
func (n *Node) closeTAXII() error {
	n.taxii.mu.Lock()
	defer n.taxii.mu.Unlock()
	if n.taxii.index == nil {
		return nil
	}
	err := n.taxii.index.Close()
	n.taxii.index, n.taxii.store = nil, nil
	return err
}

// taxiiConfig returns the taxii section in force.
func (n *Node) taxiiConfig() *taxii.Config {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := n.Config.TAXII
	return &c
}

// nations returns the node's nation and those of its principals: the
// nations TLP:CLEAR reaches.
func (n *Node) nations() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := []string{n.Config.Node.Nation}
	for _, p := range n.Config.Principals {
		if label.IsNationCode(p.Nation) && !slices.Contains(out, p.Nation) {
			out = append(out, p.Nation)
		}
	}
	return out
}

// taxiiHandler returns the TAXII server of the S3 listener: HTTP Basic
// with the node's S3 credentials (admin.credential), the roles and labels
// of every other interface.
func (n *Node) taxiiHandler(admin *adminServer) http.Handler {
	return taxii.NewServer(taxii.ServerConfig{
		Store: n.TAXII,
		Credential: func(accessKey string) (string, string, bool) {
			p, s, ok := admin.credential(accessKey)
			return p, s, ok
		},
		Principal:     n.Principal,
		Ready:         n.Ready,
		Authenticated: httpguard.Authenticated,
		Title:         "embassy node " + n.Config.Node.ID,
		Description:   "threat intelligence of " + n.Config.Node.Nation + " (STIX 2.1; TLP 2.0 markings decide who reads)",
		Logger:        n.Log,
	})
}

// ErrNoCollection is returned for a collection that does not exist.
var ErrNoCollection = taxii.ErrNoCollection

// AddCollection adds a TAXII collection to the configuration, through
// ProposeConfig: one whose community or AMBER peers name other nations
// shares with them and needs custodians.
func (n *Node) AddCollection(ctx context.Context, col taxii.CollectionConfig) (EditResult, error) {
	if col.ID == "" {
		col.ID = taxii.NewCollectionID()
	}
	return n.editConfig(ctx, func(c *Config) error {
		for _, o := range c.TAXII.Collections {
			if o.ID == col.ID || col.Alias != "" && (o.Alias == col.Alias || o.ID == col.Alias) {
				return fmt.Errorf("collection %s: already exists", col.Name())
			}
		}
		c.TAXII.Collections = append(slices.Clone(c.TAXII.Collections), col)
		return nil
	})
}

// RemoveCollection removes a collection from the configuration. Its
// objects stay in its vault.
func (n *Node) RemoveCollection(ctx context.Context, name string) (EditResult, error) {
	return n.editConfig(ctx, func(c *Config) error {
		i := slices.IndexFunc(c.TAXII.Collections, func(o taxii.CollectionConfig) bool { return o.ID == name || o.Alias != "" && o.Alias == name })
		if i < 0 {
			return fmt.Errorf("%w: %s", ErrNoCollection, name)
		}
		col := c.TAXII.Collections[i]
		for _, s := range c.TAXII.Sync {
			if s.Collection == col.ID || s.Collection == col.Alias {
				return fmt.Errorf("collection %s: sync job %s uses it (remove it first: embassy taxii sync rm %s)", name, s.Name, s.Name)
			}
		}
		c.TAXII.Collections = slices.Delete(slices.Clone(c.TAXII.Collections), i, i+1)
		return nil
	})
}

// editConfig proposes the configuration in force changed by edit.
func (n *Node) editConfig(ctx context.Context, edit func(*Config) error) (EditResult, error) {
	n.mu.Lock()
	c, err := n.Config.clone()
	n.mu.Unlock()
	if err != nil {
		return EditResult{}, err
	}
	if err := edit(c); err != nil {
		return EditResult{}, err
	}
	if err := c.Validate(); err != nil {
		return EditResult{}, err
	}
	body, err := c.Marshal()
	if err != nil {
		return EditResult{}, err
	}
	return n.ProposeConfig(ctx, body)
}

// clone returns a deep copy of the configuration.
func (c *Config) clone() (*Config, error) {
	b, err := c.Marshal()
	if err != nil {
		return nil, err
	}
	out, err := ParseConfig(b)
	if err != nil {
		return nil, errors.New("the configuration in force does not round-trip: " + err.Error())
	}
	return out, nil
}
