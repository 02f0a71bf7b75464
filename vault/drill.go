package vault

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/placement"
	"github.com/embassy-dev/embassy/site"
)

// A drill answers "what if we lost these sites?" without destroying
// anything: it reads every object (or a sample) using only the surviving
// sites, and reports what would be lost (RPO), how long a full restore
// would take at the rate it measured (RTO), and which vault policies could
// no longer be kept.

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
	Lost         []string `json:"lost,omitempty"` // keys and versions that would be lost
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
	PoliciesBroke []string     `json:"policies_violated,omitempty"`
	Seconds       float64      `json:"seconds"`
}

// Drill runs a drill. It writes nothing.
func (e *Engine) Drill(ctx context.Context, o DrillOptions) (DrillReport, error) {
	ctx = AsSystem(ctx)
	start := time.Now()
	rep := DrillReport{}
	for id := range o.Lost {
		rep.LostSites = append(rep.LostSites, id)
	}
	slices.Sort(rep.LostSites)
	vaults := o.Vaults
	if len(vaults) == 0 {
		for _, v := range e.Vaults() {
			vaults = append(vaults, v.Name)
		}
	}
	type item struct {
		vi int
		v  index.Version
	}
	var items []item
	for vi, name := range vaults {
		v, err := e.Vault(name)
		if err != nil {
			return rep, err
		}
		dv := DrillVault{Vault: name, PolicyKept: true}
		var survivors []placement.Candidate
		for _, c := range e.candidates(nil, nil) {
			if !o.Lost[c.ID] {
				survivors = append(survivors, c)
			}
		}
		if err := placement.Feasible(v.Policy, survivors); err != nil {
			dv.PolicyKept, dv.PolicyReason = false, err.Error()
			rep.PoliciesBroke = append(rep.PoliciesBroke, name+": "+err.Error())
		}
		vo := index.VersionOptions{Max: 1000}
		for {
			page, err := e.index.Versions(ctx, name, vo)
			if err != nil {
				return rep, err
			}
			for _, x := range page.Versions {
				if x.DeleteMarker {
					continue
				}
				dv.Objects++
				dv.Bytes += x.Size
				items = append(items, item{vi, x})
			}
			if !page.Truncated {
				break
			}
			vo.KeyMarker, vo.VersionMarker = page.NextKeyMarker, page.NextVersionMarker
		}
		rep.Vaults = append(rep.Vaults, dv)
	}
	read := make([]bool, len(items))
	if o.Sample > 0 && o.Sample < len(items) {
		for _, i := range rand.Perm(len(items))[:o.Sample] {
			read[i] = true
		}
	} else {
		for i := range read {
			read[i] = true
		}
	}
	var readTime time.Duration
	done := 0
	for i, it := range items {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		dv := &rep.Vaults[it.vi]
		lost, degraded := false, false
		if read[i] {
			t0 := time.Now()
			n, problems, err := e.drillRead(ctx, it.v, o.Lost)
			readTime += time.Since(t0)
			rep.Read++
			rep.ReadBytes += n
			lost, degraded = err != nil, problems > 0
		} else {
			lost, degraded = e.drillPlacement(ctx, it.v, o.Lost)
		}
		if lost {
			dv.LostObjects++
			dv.LostBytes += it.v.Size
			dv.Lost = append(dv.Lost, it.v.Key+" version "+it.v.ID.String())
		} else if degraded {
			dv.Degraded++
		}
		done++
		if o.Progress != nil {
			o.Progress(done, len(items))
		}
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

// drillRead reads a version using only surviving sites.
func (e *Engine) drillRead(ctx context.Context, v index.Version, lost map[string]bool) (int64, int, error) {
	r, err := e.Get(ctx, v.Vault, v.Key, GetOptions{VersionID: v.ID, Length: -1, Exclude: lost})
	if err != nil {
		return 0, 0, err
	}
	defer r.Close()
	n, err := io.Copy(io.Discard, r)
	degraded := 0
	for _, p := range r.m.Parts {
		for _, sid := range p.Sites {
			if lost[sid] {
				degraded++
			}
		}
	}
	return n, degraded, err
}

// drillPlacement judges a version by where its shards are: lost if some
// part keeps fewer than k shards on surviving sites.
func (e *Engine) drillPlacement(ctx context.Context, v index.Version, lost map[string]bool) (bool, bool) {
	m, _, err := e.resolve(ctx, v.Vault, v.Key, v.ID)
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
