package housekeeping

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/placement"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/vault"
)

// A drill answers "what if we lost these sites?" without destroying
// anything: it reads every object (or a sample) using only the surviving
// sites, and reports what would be lost (RPO), how long a full restore
// would take at the rate it measured (RTO), and which vault policies could
// no longer be kept. It streams over the index a page at a time, so its
// memory does not grow with the number of versions (a sample is chosen in a
// first counting pass and costs one flag per sampled version).

// LostSites resolves a loss specification, comma-separated selectors
// "site=ID", "provider=NAME", "jurisdiction=CODE", "control=CODE", to site
// ids. Several selectors add up: every site matching any is lost.
func LostSites(spec string, sites []site.Descriptor) (map[string]bool, error) {
	lost := map[string]bool{}
	if strings.TrimSpace(spec) == "" {
		return nil, fmt.Errorf("sites: name what is lost, e.g. jurisdiction=EST")
	}
	for part := range strings.SplitSeq(spec, ",") {
		kind, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || val == "" {
			return nil, fmt.Errorf("sites: %q is not kind=value (site, provider, jurisdiction or control)", part)
		}
		matched := 0
		for _, s := range sites {
			var hit bool
			switch strings.ToLower(kind) {
			case "site":
				hit = s.ID == val
			case "provider":
				hit = s.Provider == val
			case "jurisdiction":
				hit = s.Jurisdiction == val
			case "control":
				hit = s.Control == val
			default:
				return nil, fmt.Errorf("sites: unknown kind %q (want site, provider, jurisdiction or control)", kind)
			}
			if hit {
				lost[s.ID] = true
				matched++
			}
		}
		if matched == 0 {
			return nil, fmt.Errorf("sites: %s matches no configured site", part)
		}
	}
	return lost, nil
}

// DrillOptions configure a drill.
type DrillOptions struct {
	// Lost are the sites assumed gone.
	Lost map[string]bool
	// Sample, if > 0, reads only this many versions chosen at random;
	// the rest are judged by their placement alone.
	Sample int
	// Vaults limits the drill (all if empty).
	Vaults []string
	// Progress, if set, is called as versions are read.
	Progress func(done, total int)
}

// MaxListed bounds the keys a report lists by name; the counts are always
// complete.
const MaxListed = 1000

// DrillVault is one vault's outcome.
type DrillVault struct {
	Vault        string   `json:"vault"`
	Objects      int      `json:"objects"`
	Bytes        int64    `json:"bytes"`
	LostObjects  int      `json:"lost_objects"`
	LostBytes    int64    `json:"lost_bytes"`
	Degraded     int      `json:"degraded"` // readable, but below full redundancy
	PolicyKept   bool     `json:"policy_kept"`
	PolicyReason string   `json:"policy_reason,omitempty"`
	Lost         []string `json:"lost"` // keys and versions that would be lost (at most MaxListed)
}

// DrillReport is a drill's outcome.
type DrillReport struct {
	LostSites     []string     `json:"lost_sites"`
	Vaults        []DrillVault `json:"vaults"`
	Objects       int          `json:"objects"`
	Bytes         int64        `json:"bytes"`
	Read          int          `json:"read"`       // versions actually read
	ReadBytes     int64        `json:"read_bytes"` // bytes actually read
	RPOObjects    int          `json:"rpo_objects"`
	RPOBytes      int64        `json:"rpo_bytes"`
	ReadRate      float64      `json:"read_rate_bytes_per_second"`
	RTOSeconds    float64      `json:"rto_seconds"`
	PoliciesBroke []string     `json:"policies_violated"`
	Seconds       float64      `json:"seconds"`
}

// eachVersion calls fn for every version of a vault that is not a delete
// marker, a page at a time.
func (k *Keeper) eachVersion(ctx context.Context, vaultName string, fn func(index.Version) error) error {
	vo := index.VersionOptions{Max: index.MaxList}
	for {
		page, err := k.ix.Versions(ctx, vaultName, vo)
		if err != nil {
			return err
		}
		for _, x := range page.Versions {
			if x.DeleteMarker {
				continue
			}
			if err := fn(x); err != nil {
				return err
			}
		}
		if !page.Truncated {
			return nil
		}
		vo.KeyMarker, vo.VersionMarker = page.NextKeyMarker, page.NextVersionMarker
	}
}

// Drill runs a drill. It writes nothing.
func (k *Keeper) Drill(ctx context.Context, o DrillOptions) (DrillReport, error) {
	rep, err := k.drill(ctx, o)
	k.record(ctx, "drill", rep, err)
	return rep, err
}

func (k *Keeper) drill(ctx context.Context, o DrillOptions) (DrillReport, error) {
	ctx = vault.AsSystem(ctx)
	start := time.Now()
	rep := DrillReport{LostSites: []string{}, Vaults: []DrillVault{}}
	for id := range o.Lost {
		rep.LostSites = append(rep.LostSites, id)
	}
	slices.Sort(rep.LostSites)
	vaults := o.Vaults
	if len(vaults) == 0 {
		for _, v := range k.e.Vaults() {
			vaults = append(vaults, v.Name)
		}
	}
	// First pass: count, so that progress has a total and a sample can be
	// drawn without holding the versions.
	total := 0
	for _, name := range vaults {
		if _, err := k.e.Vault(name); err != nil {
			return rep, err
		}
		if err := k.eachVersion(ctx, name, func(index.Version) error { total++; return nil }); err != nil {
			return rep, err
		}
	}
	var sample map[int]bool
	if o.Sample > 0 && o.Sample < total {
		sample = make(map[int]bool, o.Sample)
		for len(sample) < o.Sample {
			sample[rand.IntN(total)] = true
		}
	}
	var readTime time.Duration
	done := 0
	for _, name := range vaults {
		v, err := k.e.Vault(name)
		if err != nil {
			return rep, err
		}
		dv := DrillVault{Vault: name, PolicyKept: true}
		var survivors []placement.Candidate
		for _, c := range k.e.Candidates(nil, nil) {
			if !o.Lost[c.ID] {
				survivors = append(survivors, c)
			}
		}
		if err := placement.Feasible(v.Policy, survivors); err != nil {
			dv.PolicyKept, dv.PolicyReason = false, err.Error()
			rep.PoliciesBroke = append(rep.PoliciesBroke, name+": "+err.Error())
		}
		err = k.eachVersion(ctx, name, func(x index.Version) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			dv.Objects++
			dv.Bytes += x.Size
			var lost, degraded bool
			if sample == nil || sample[done] {
				t0 := time.Now()
				n, d, err := k.drillRead(ctx, x, o.Lost)
				readTime += time.Since(t0)
				rep.Read++
				rep.ReadBytes += n
				lost, degraded = err != nil, d
			} else {
				lost, degraded = k.drillPlacement(ctx, x, o.Lost)
			}
			if lost {
				dv.LostObjects++
				dv.LostBytes += x.Size
				if len(dv.Lost) < MaxListed {
					dv.Lost = append(dv.Lost, x.Key+" version "+x.ID.String())
				}
			} else if degraded {
				dv.Degraded++
			}
			done++
			if o.Progress != nil {
				o.Progress(done, total)
			}
			return nil
		})
		if err != nil {
			return rep, err
		}
		rep.Vaults = append(rep.Vaults, dv)
	}
	for _, dv := range rep.Vaults {
		rep.Objects += dv.Objects
		rep.Bytes += dv.Bytes
		rep.RPOObjects += dv.LostObjects
		rep.RPOBytes += dv.LostBytes
	}
	if readTime > 0 && rep.ReadBytes > 0 {
		rep.ReadRate = float64(rep.ReadBytes) / readTime.Seconds()
		rep.RTOSeconds = float64(rep.Bytes-rep.RPOBytes) / rep.ReadRate
	}
	rep.Seconds = time.Since(start).Seconds()
	return rep, nil
}

// drillRead reads a version using only surviving sites. It reports the
// bytes read and whether any shard sits on a lost site.
func (k *Keeper) drillRead(ctx context.Context, v index.Version, lost map[string]bool) (int64, bool, error) {
	r, err := k.e.Get(ctx, v.Vault, v.Key, vault.GetOptions{VersionID: v.ID, Length: -1, Exclude: lost})
	if err != nil {
		return 0, false, err
	}
	defer r.Close()
	n, err := io.Copy(io.Discard, r)
	m, _, merr := k.manifest(ctx, v)
	degraded := false
	if merr == nil {
		for _, p := range m.Parts {
			for _, sid := range p.Sites {
				degraded = degraded || lost[sid]
			}
		}
	}
	return n, degraded, err
}

// drillPlacement judges a version by where its shards are: lost if some
// part keeps fewer than k shards on surviving sites.
func (k *Keeper) drillPlacement(ctx context.Context, v index.Version, lost map[string]bool) (bool, bool) {
	m, _, err := k.manifest(ctx, v)
	if err != nil {
		return true, false
	}
	degraded := false
	for _, p := range m.Parts {
		alive := 0
		for _, sid := range p.Sites {
			if lost[sid] {
				degraded = true
			} else {
				alive++
			}
		}
		if alive < m.K {
			return true, degraded
		}
	}
	return false, degraded
}

// manifest opens the indexed manifest of a listed version and checks that
// it is that version's.
func (k *Keeper) manifest(ctx context.Context, v index.Version) (*manifest.Manifest, []byte, error) {
	iv, err := k.ix.Get(ctx, v.Vault, v.Key, v.ID)
	if err != nil {
		return nil, nil, err
	}
	m, err := k.openIndexed(v, iv.Envelope)
	if err != nil {
		return nil, nil, err
	}
	return m, iv.Envelope, nil
}

// openIndexed opens env, the index's envelope of listed version v, and
// checks that it is that version's.
func (k *Keeper) openIndexed(v index.Version, env []byte) (*manifest.Manifest, error) {
	m, err := k.e.OpenEnvelope(env)
	if err != nil {
		return nil, err
	}
	if m.Vault != v.Vault || m.Key != v.Key || m.Version != v.ID {
		return nil, fmt.Errorf("%s/%s: index entry holds the manifest of %s/%s version %s: %w", v.Vault, v.Key, m.Vault, m.Key, m.Version, manifest.ErrCorrupt)
	}
	return m, nil
}
