package node

import (
	"context"
	"errors"
	"fmt"
	"github.com/embassy-dev/embassy/audit"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/embassy-dev/embassy/internal/httpguard"
	"github.com/embassy-dev/embassy/label"
	"github.com/embassy-dev/embassy/taxii"
)

// TAXIIFile is the TAXII secondary index (a cache of the collections'
// metadata) and the status resources, in the node directory.
const TAXIIFile = "taxii.db"

// taxiiState is the node's TAXII store, opened on first use, and the HTTP
// client of its sync jobs.
type taxiiState struct {
	mu    sync.Mutex
	index *taxii.Index
	store *taxii.Store
	// sync is the sync jobs' HTTP client: a transport of the node's
	// own, whose idle connections Close closes. The jobs used
	// http.DefaultClient, whose connections to the remote TAXII servers
	// stayed open in the process after the node closed, to its idle
	// timeout (90 s).
	sync *http.Client
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
		// Collections' objects are versions of the vault, on the log as
		// such; what TAXII added or deleted, and for whom, beside them.
		Audit: func(ctx context.Context, ev audit.Event) error {
			n.recordBestEffort(ctx, ev)
			return nil
		},
	})
	return n.taxii.store, nil
}

// closeTAXII closes taxii.db if it is open.
func (n *Node) closeTAXII() error {
	n.taxii.mu.Lock()
	defer n.taxii.mu.Unlock()
	if n.taxii.sync != nil {
		n.taxii.sync.CloseIdleConnections()
	}
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
	c := n.conf().TAXII
	return &c
}

// nations returns the node's nation and those of its principals: the
// nations TLP:CLEAR reaches.
func (n *Node) nations() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := []string{n.conf().Node.Nation}
	for _, p := range n.conf().Principals {
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
		Title:         "embassy node " + n.conf().Node.ID,
		Description:   "threat intelligence of " + n.conf().Node.Nation + " (STIX 2.1; TLP 2.0 markings decide who reads)",
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
	c, err := n.conf().clone()
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

// SyncTAXII runs the sync job of that name once (embassy taxii sync run).
func (n *Node) SyncTAXII(ctx context.Context, name string) (taxii.SyncResult, error) {
	s, err := n.TAXII()
	if err != nil {
		return taxii.SyncResult{}, err
	}
	job, ok := n.syncJob(name)
	if !ok {
		return taxii.SyncResult{}, fmt.Errorf("no TAXII sync job %q (embassy taxii sync ls)", name)
	}
	return s.Sync(ctx, job, n.Principal, n.taxiiSyncClient())
}

// taxiiSyncClient returns the sync jobs' HTTP client (taxiiState.sync).
func (n *Node) taxiiSyncClient() *http.Client {
	n.taxii.mu.Lock()
	defer n.taxii.mu.Unlock()
	if n.taxii.sync == nil {
		n.taxii.sync = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	return n.taxii.sync
}

func (n *Node) syncJob(name string) (taxii.SyncConfig, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, j := range n.conf().TAXII.Sync {
		if j.Name == name {
			return j, true
		}
	}
	return taxii.SyncConfig{}, false
}

// runTAXIISync runs every sync job of the configuration at its interval
// while the node serves; a run that fails is tried again sooner, after a
// backoff that doubles from 10s up to the interval.
func (n *Node) runTAXIISync(ctx context.Context) {
	n.mu.Lock()
	jobs := slices.Clone(n.conf().TAXII.Sync)
	n.mu.Unlock()
	var wg sync.WaitGroup
	for _, job := range jobs {
		wg.Go(func() {
			every := job.Every()
			backoff := 10 * time.Second
			wait := time.Duration(0)
			for {
				t := time.NewTimer(wait)
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
				if n.Ready() != nil {
					wait = backoff
					continue
				}
				if _, err := n.SyncTAXII(ctx, job.Name); err != nil {
					if ctx.Err() != nil {
						return
					}
					n.Log.Warn("TAXII sync failed; trying again", "job", job.Name, "in", min(backoff, every).String(), "err", err)
					wait = min(backoff, every)
					backoff = min(backoff*2, every)
					continue
				}
				wait, backoff = every, 10*time.Second
			}
		})
	}
	wg.Wait()
}

// RebuildTAXII makes the TAXII index of a collection (all, if name is
// empty) again from its vault, that is from the sites.
func (n *Node) RebuildTAXII(ctx context.Context, name string) (map[string]taxii.RebuildStats, error) {
	s, err := n.TAXII()
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	cols := slices.Clone(n.conf().TAXII.Collections)
	n.mu.Unlock()
	out := map[string]taxii.RebuildStats{}
	found := false
	for _, c := range cols {
		if name != "" && c.ID != name && c.Alias != name {
			continue
		}
		found = true
		st, err := s.Rebuild(ctx, c)
		if err != nil {
			return out, err
		}
		out[c.Name()] = st
	}
	if name != "" && !found {
		return nil, fmt.Errorf("%w: %s", ErrNoCollection, name)
	}
	return out, nil
}

// AddSync adds a sync job to the configuration (through ProposeConfig: a
// job that pushes sends data away and needs custodians).
func (n *Node) AddSync(ctx context.Context, job taxii.SyncConfig) (EditResult, error) {
	if job.Peer != "" {
		return EditResult{}, taxii.ErrNoPeerChannel
	}
	return n.editConfig(ctx, func(c *Config) error {
		for _, o := range c.TAXII.Sync {
			if o.Name == job.Name {
				return fmt.Errorf("sync job %s: already exists", job.Name)
			}
		}
		c.TAXII.Sync = append(slices.Clone(c.TAXII.Sync), job)
		return nil
	})
}

// RemoveSync removes a sync job from the configuration.
func (n *Node) RemoveSync(ctx context.Context, name string) (EditResult, error) {
	return n.editConfig(ctx, func(c *Config) error {
		i := slices.IndexFunc(c.TAXII.Sync, func(o taxii.SyncConfig) bool { return o.Name == name })
		if i < 0 {
			return fmt.Errorf("no TAXII sync job %q", name)
		}
		c.TAXII.Sync = slices.Delete(slices.Clone(c.TAXII.Sync), i, i+1)
		return nil
	})
}

// AddTAXII adds the objects of an envelope or bundle to a collection, as
// the context's principal (embassy taxii add).
func (n *Node) AddTAXII(ctx context.Context, collection string, body []byte) (*taxii.Status, error) {
	s, err := n.TAXII()
	if err != nil {
		return nil, err
	}
	col, err := s.Collection(collection)
	if err != nil {
		return nil, err
	}
	env, err := taxii.ParseEnvelope(body, 100000)
	if err != nil {
		return nil, err
	}
	return s.Add(ctx, col, env.Objects)
}
