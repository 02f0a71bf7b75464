package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/embassy-dev/embassy/housekeeping"
	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/node"
	"github.com/embassy-dev/embassy/site"
	"github.com/embassy-dev/embassy/vault"
)

func (a *app) demoCmd() *cobra.Command {
	var keep bool
	var sizeMiB int
	c := &cobra.Command{
		Use:   "demo",
		Short: "Walk through a data embassy on throwaway local sites",
		Long: `Build a throwaway node with six directory sites in three jurisdictions (EST,
LUX, FIN) on two providers, store sample data, show where every shard went,
destroy every site in the home jurisdiction together with the node's index,
rebuild the index from the surviving sites and read everything back.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if sizeMiB < 0 || sizeMiB > maxDemoMiB {
				return fmt.Errorf("--size %d: want a size in MiB from 0 to %d (the demo holds its samples in memory)", sizeMiB, maxDemoMiB)
			}
			return a.demo(cmd.Context(), keep, sizeMiB)
		},
	}
	c.Flags().BoolVar(&keep, "keep", false, "keep the demo directory afterwards")
	c.Flags().IntVar(&sizeMiB, "size", 24, fmt.Sprintf("size in MiB of the large sample object (0 to %d)", maxDemoMiB))
	return c
}

// maxDemoMiB bounds demo --size: the samples are held in memory.
const maxDemoMiB = 4096

// demoReport is demo --json: what the walk-through did and found.
type demoReport struct {
	Dir           string                    `json:"dir,omitempty"` // with --keep
	Sites         []node.SiteConfig         `json:"sites"`
	Refused       string                    `json:"refused_policy"` // why the infeasible policy was refused
	Vault         node.VaultConfig          `json:"vault"`
	Objects       []demoObject              `json:"objects"`
	Plaintext     bool                      `json:"plaintext_on_sites"`
	Destroyed     []string                  `json:"destroyed"` // sites, and the index
	Rebuild       housekeeping.RebuildStats `json:"rebuild"`
	Listed        int                       `json:"listed"` // objects listed after the rebuild
	ByteIdentical bool                      `json:"byte_identical"`
}

type demoObject struct {
	Key           string      `json:"key"`
	VersionID     string      `json:"version_id"`
	Size          int64       `json:"size"`
	PutSeconds    float64     `json:"put_seconds"`
	Shards        []shardJSON `json:"shards"`
	ByteIdentical bool        `json:"byte_identical"`
}

func (a *app) demo(ctx context.Context, keep bool, sizeMiB int) error {
	out := a.stdout
	if a.json {
		out = io.Discard
	}
	var rep demoReport
	step := func(format string, args ...any) { fmt.Fprintf(out, "\n== "+format+"\n", args...) }
	work, err := os.MkdirTemp("", "embassy-demo-")
	if err != nil {
		return err
	}
	if keep {
		rep.Dir = work
		fmt.Fprintf(out, "demo directory: %s (kept)\n", work)
	} else {
		defer os.RemoveAll(work)
	}
	dir := filepath.Join(work, "node")

	step("1. A node for Estonia, with six sites in three jurisdictions on two providers")
	if _, err := node.Init(dir, node.InitOptions{Nation: "EST"}); err != nil {
		return err
	}
	n, err := node.Open(ctx, dir, node.NewLogger(node.LogConfig{Level: "error"}, a.stderr))
	if err != nil {
		return err
	}
	defer func() { n.Close() }()
	ctx = n.As(ctx, "admin")
	sites := []node.SiteConfig{
		demoSite("est-tallinn", "EST", "gov-dc", "EST", work),
		demoSite("est-tartu", "EST", "cloudco", "USA", work),
		demoSite("lux-betzdorf", "LUX", "gov-dc", "EST", work),
		demoSite("lux-windhof", "LUX", "cloudco", "USA", work),
		demoSite("fin-helsinki", "FIN", "gov-dc", "EST", work),
		demoSite("fin-kajaani", "FIN", "cloudco", "USA", work),
	}
	rep.Sites = sites
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SITE\tJURISDICTION\tPROVIDER\tCONTROLLED FROM")
	for _, s := range sites {
		if err := n.AddSite(s); err != nil {
			return err
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", s.ID, s.Jurisdiction, s.Provider, s.Control)
	}
	w.Flush()

	step("2. A vault whose policy is checked before it is accepted")
	bad := node.VaultConfig{Name: "impossible", Erasure: "4+2", Survive: "jurisdictions=1,providers=1"}
	if err := n.AddVault(bad); err != nil {
		rep.Refused = err.Error()
		fmt.Fprintf(out, "4+2 surviving a jurisdiction AND a provider is refused:\n  %v\n", err)
	} else {
		return fmt.Errorf("demo: an infeasible policy was accepted")
	}
	good := node.VaultConfig{Name: "registry", Erasure: "4+2", Survive: "jurisdictions=1,sites=1", OutsideHome: true}
	if err := n.AddVault(good); err != nil {
		return err
	}
	for _, v := range n.Config.Vaults {
		if v.Name == good.Name {
			rep.Vault = v
		}
	}
	fmt.Fprintln(out, "vault registry: 4+2, survives the loss of any one jurisdiction, and of Estonia itself")

	step("3. Store sample data")
	samples := map[string][]byte{
		"2026/population.db":       demoData("population", sizeMiB<<20),
		"2026/land-registry.csv":   []byte(strings.Repeat("parcel,owner,area\n", 2000)),
		"2026/cabinet-minutes.txt": []byte("Cabinet minutes, 25 November 2026. Agenda: the data embassy.\n"),
	}
	keys := []string{"2026/cabinet-minutes.txt", "2026/land-registry.csv", "2026/population.db"}
	sums := map[string][32]byte{}
	for _, k := range keys {
		start := time.Now()
		info, err := n.Engine.Put(ctx, "registry", k, bytes.NewReader(samples[k]), vault.PutOptions{Size: int64(len(samples[k]))})
		if err != nil {
			return err
		}
		sums[k] = sha256.Sum256(samples[k])
		rep.Objects = append(rep.Objects, demoObject{Key: k, VersionID: info.VersionID.String(), Size: info.Size, PutSeconds: time.Since(start).Seconds(), Shards: []shardJSON{}})
		fmt.Fprintf(out, "put registry/%-26s %10s  in %v\n", k, human(info.Size), time.Since(start).Round(time.Millisecond))
	}

	step("4. Where every shard went")
	for i, k := range keys {
		locs, err := n.Engine.Locate(ctx, "registry", k, manifest.ID{})
		if err != nil {
			return err
		}
		per := map[string][]string{}
		for _, l := range locs {
			kind := "d"
			if l.Parity {
				kind = "p"
			}
			rep.Objects[i].Shards = append(rep.Objects[i].Shards, shardFromLocation(l))
			per[l.Jurisdiction] = append(per[l.Jurisdiction], fmt.Sprintf("%s%d@%s", kind, l.Shard, l.Site))
		}
		fmt.Fprintf(out, "%s\n", k)
		for _, j := range []string{"EST", "LUX", "FIN"} {
			fmt.Fprintf(out, "  %s: %s\n", j, strings.Join(per[j], "  "))
		}
	}
	fmt.Fprintln(out, "(d = data shard, p = parity shard; any 4 of the 6 rebuild the object)")
	plainFound := false
	for _, s := range sites {
		filepath.WalkDir(s.Path, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				b, _ := os.ReadFile(p)
				if bytes.Contains(b, []byte("Cabinet minutes")) || bytes.Contains(b, []byte("population.db")) {
					plainFound = true
				}
			}
			return nil
		})
	}
	rep.Plaintext = plainFound
	if plainFound {
		return fmt.Errorf("demo: plaintext found on a site")
	}
	fmt.Fprintln(out, "every site scanned: no plaintext and no object name on any of them")

	step("5. Disaster: every Estonian site is destroyed, and so is the node's index")
	// The node stops first: its audit log copies to the sites in the
	// background, and a copy under way would race the removal.
	n.Close()
	for _, s := range sites {
		if s.Jurisdiction == "EST" {
			if err := os.RemoveAll(s.Path); err != nil {
				return err
			}
			rep.Destroyed = append(rep.Destroyed, s.ID)
			fmt.Fprintf(out, "rm -rf %s (%s)\n", s.Path, s.ID)
		}
	}
	if err := os.Remove(filepath.Join(dir, "index.db")); err != nil {
		return err
	}
	rep.Destroyed = append(rep.Destroyed, "index.db")
	fmt.Fprintln(out, "rm index.db")
	if n, err = node.Open(ctx, dir, node.NewLogger(node.LogConfig{Level: "error"}, io.Discard)); err != nil {
		return err
	}
	for _, s := range sites {
		if s.Jurisdiction == "EST" {
			n.Engine.SetSiteDown(s.ID, time.Hour)
		}
	}

	step("6. Rebuild the index from the surviving sites alone")
	st, err := n.Keeper().RebuildIndex(ctx, nil)
	if err != nil {
		return err
	}
	rep.Rebuild = st
	fmt.Fprintf(out, "found %d versions in %d manifest copies on the surviving sites\n", st.Versions, st.Manifests)
	page, err := n.Engine.List(ctx, "registry", index.ListOptions{})
	if err != nil {
		return err
	}
	rep.Listed = len(page.Entries)
	fmt.Fprintf(out, "registry lists %d objects again\n", len(page.Entries))

	step("7. Read everything back from LUX and FIN")
	ok := true
	for i, k := range keys {
		r, err := n.Engine.Get(ctx, "registry", k, vault.GetOptions{Length: -1})
		if err != nil {
			return err
		}
		h := sha256.New()
		_, err = io.Copy(h, r)
		r.Close()
		if err != nil {
			return err
		}
		want := sums[k]
		same := bytes.Equal(h.Sum(nil), want[:])
		ok = ok && same
		rep.Objects[i].ByteIdentical = same
		verdict := "byte-identical"
		if !same {
			verdict = "DIFFERS"
		}
		fmt.Fprintf(out, "get registry/%-26s %s\n", k, verdict)
	}
	rep.ByteIdentical = ok
	if !ok {
		return fmt.Errorf("demo: data differs after the loss of EST")
	}
	if a.json {
		return a.printJSON(rep)
	}
	fmt.Fprintln(out, "\nEstonia's sites and the node's index are gone; every object survived, byte-identical.")
	return nil
}

func demoSite(id, jur, provider, control, work string) node.SiteConfig {
	return node.SiteConfig{
		Descriptor: site.Descriptor{ID: id, Jurisdiction: jur, Provider: provider, Control: control, Operator: "demo"},
		Driver:     "dir", Path: filepath.Join(work, "sites", id),
	}
}

func demoData(seed string, n int) []byte {
	rng := rand.New(rand.NewPCG(uint64(len(seed)), 42))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := rng.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}
