package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"mime"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/embassy-dev/embassy/housekeeping"
	"github.com/embassy-dev/embassy/index"
	"github.com/embassy-dev/embassy/index/boltindex"
	"github.com/embassy-dev/embassy/manifest"
	"github.com/embassy-dev/embassy/node"
	"github.com/embassy-dev/embassy/taxii"
	"github.com/embassy-dev/embassy/vault"
)

func notInit(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %v", node.ErrNotInitialized, err)
	}
	return err
}

// objectJSON is the --json form of an object version.
type objectJSON struct {
	Vault        string            `json:"vault"`
	Key          string            `json:"key"`
	VersionID    string            `json:"version_id"`
	Created      time.Time         `json:"created"`
	Size         int64             `json:"size"`
	ETag         string            `json:"etag,omitempty"`
	ContentType  string            `json:"content_type,omitempty"`
	Meta         map[string]string `json:"meta,omitempty"`
	Digest       string            `json:"blake3,omitempty"`
	DeleteMarker bool              `json:"delete_marker,omitempty"`
	Label        string            `json:"label,omitempty"`
	Erasure      string            `json:"erasure,omitempty"`
	Shards       []shardJSON       `json:"shards,omitempty"`
}

type shardJSON struct {
	Part         int    `json:"part"`
	Shard        int    `json:"shard"`
	Kind         string `json:"kind"`
	Site         string `json:"site"`
	Jurisdiction string `json:"jurisdiction"`
	Provider     string `json:"provider"`
	Control      string `json:"control"`
}

func shardFromLocation(l vault.ShardLocation) shardJSON {
	kind := "data"
	if l.Parity {
		kind = "parity"
	}
	return shardJSON{Part: l.Part, Shard: l.Shard, Kind: kind, Site: l.Site, Jurisdiction: l.Jurisdiction, Provider: l.Provider, Control: l.Control}
}

func toJSON(i vault.ObjectInfo) objectJSON {
	o := objectJSON{Vault: i.Vault, Key: i.Key, VersionID: i.VersionID.String(), Created: i.Created, Size: i.Size,
		ETag: i.ETag, ContentType: i.ContentType, Meta: i.Meta, DeleteMarker: i.DeleteMarker, Label: i.Label}
	if len(i.Digest) > 0 {
		o.Digest = fmt.Sprintf("%x", i.Digest)
	}
	if !i.DeleteMarker {
		o.Erasure = fmt.Sprintf("%d+%d", i.K, i.M)
	}
	return o
}

func (a *app) putCmd() *cobra.Command {
	var contentType, lbl string
	var meta []string
	c := &cobra.Command{
		Use:   "put FILE VAULT/KEY",
		Short: "Store a file (or - for standard input) as a new version of an object",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			vaultName, key, err := needKey(args[1])
			if err != nil {
				return err
			}
			o := vault.PutOptions{Size: -1, ContentType: contentType, Meta: map[string]string{}, Label: lbl}
			for _, kv := range meta {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return fmt.Errorf("--meta %q: want key=value", kv)
				}
				o.Meta[strings.ToLower(k)] = v
			}
			var src io.Reader = a.stdin
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				fi, err := f.Stat()
				if err != nil {
					return err
				}
				if fi.IsDir() {
					return fmt.Errorf("%s is a directory", args[0])
				}
				o.Size = fi.Size()
				if o.ContentType == "" {
					o.ContentType = mime.TypeByExtension(filepath.Ext(args[0]))
				}
				src = f
			}
			n, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer n.Close()
			p := a.newProgress("put "+safeText(key), o.Size)
			info, err := n.Engine.Put(n.As(cmd.Context(), a.principal), vaultName, key, &progressReader{r: src, p: p}, o)
			p.finish()
			if err != nil {
				return explain(err)
			}
			if a.json {
				return a.printJSON(toJSON(info))
			}
			fmt.Fprintf(a.stdout, "%s version %s: %s stored as %d+%d\n", safeText(vaultName+"/"+key), info.VersionID, human(info.Size), info.K, info.M)
			return nil
		},
	}
	c.Flags().StringVar(&contentType, "content-type", "", "content type (default: from the file name)")
	c.Flags().StringVar(&lbl, "label", "", "confidentiality label, e.g. \"NATO SECRET//REL TO EST, LUX\" (default: the vault's)")
	c.Flags().StringArrayVar(&meta, "meta", nil, "user metadata key=value (repeatable)")
	return c
}

// parseRange parses "START-END" (inclusive, as HTTP) or "START-".
func parseRange(s string) (off, length int64, err error) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0, fmt.Errorf("--range %q: want START-END or START-", s)
	}
	if off, err = strconv.ParseInt(a, 10, 64); err != nil || off < 0 {
		return 0, 0, fmt.Errorf("--range %q: bad start", s)
	}
	if b == "" {
		return off, -1, nil
	}
	end, err := strconv.ParseInt(b, 10, 64)
	if err != nil || end < off {
		return 0, 0, fmt.Errorf("--range %q: bad end", s)
	}
	return off, end - off + 1, nil
}

func parseVersion(s string) (manifest.ID, error) {
	if s == "" {
		return manifest.ID{}, nil
	}
	return manifest.ParseID(s)
}

func (a *app) getCmd() *cobra.Command {
	var version, rng string
	c := &cobra.Command{
		Use:   "get VAULT/KEY FILE",
		Short: "Read an object into a file (or - for standard output)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			vaultName, key, err := needKey(args[0])
			if err != nil {
				return err
			}
			o := vault.GetOptions{Length: -1}
			if o.VersionID, err = parseVersion(version); err != nil {
				return err
			}
			if rng != "" {
				if o.Offset, o.Length, err = parseRange(rng); err != nil {
					return err
				}
			}
			n, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer n.Close()
			r, err := n.Engine.Get(n.As(cmd.Context(), a.principal), vaultName, key, o)
			if err != nil {
				return explain(err)
			}
			defer r.Close()
			var dst io.Writer = a.stdout
			var tmp *os.File
			if args[1] != "-" {
				// Write beside the target and rename, so a failed read
				// never leaves a truncated file under the target name.
				tmp, err = os.CreateTemp(filepath.Dir(args[1]), "."+filepath.Base(args[1])+".part*")
				if err != nil {
					return err
				}
				defer os.Remove(tmp.Name())
				dst = tmp
			}
			total := r.Info().Size
			if o.Length >= 0 {
				total = min(o.Length, total-o.Offset)
			}
			p := a.newProgress("get "+safeText(key), total)
			written, err := io.Copy(&progressWriter{w: dst, p: p}, r)
			p.finish()
			if err != nil {
				return explain(err)
			}
			if tmp != nil {
				if err := tmp.Sync(); err != nil {
					return err
				}
				if err := tmp.Close(); err != nil {
					return err
				}
				if err := os.Rename(tmp.Name(), args[1]); err != nil {
					return err
				}
			}
			for _, pr := range r.Problems() {
				fmt.Fprintf(a.stderr, "embassy: warning: repaired on read: %s\n", safeText(fmt.Sprint(pr)))
			}
			if a.json && tmp != nil {
				return a.printJSON(map[string]any{"object": toJSON(r.Info()), "written": written, "repaired": len(r.Problems())})
			}
			return nil
		},
	}
	c.Flags().StringVar(&version, "version", "", "read this version id instead of the latest")
	c.Flags().StringVar(&rng, "range", "", "read only bytes START-END (inclusive) or START-")
	return c
}

func (a *app) lsCmd() *cobra.Command {
	var recursive bool
	c := &cobra.Command{
		Use:   "ls VAULT[/PREFIX]",
		Short: "List the latest versions of objects",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			vaultName, prefix := splitPath(args[0])
			n, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer n.Close()
			o := index.ListOptions{Prefix: prefix}
			if !recursive {
				o.Delimiter = "/"
			}
			var objs []objectJSON
			var prefixes []string
			w := a.table()
			for {
				page, err := n.Engine.List(n.As(cmd.Context(), a.principal), vaultName, o)
				if err != nil {
					return explain(err)
				}
				for _, p := range page.CommonPrefixes {
					prefixes = append(prefixes, p)
					if !a.json {
						fmt.Fprintf(w, "\tPRE\t%s\n", safeText(p))
					}
				}
				for _, e := range page.Entries {
					if a.json {
						objs = append(objs, objectJSON{Vault: vaultName, Key: e.Key, VersionID: e.ID.String(), Created: time.Unix(0, e.Created).UTC(), Size: e.Size, ETag: e.ETag})
					} else {
						fmt.Fprintf(w, "%s\t%s\t%s\n", time.Unix(0, e.Created).UTC().Format("2006-01-02 15:04:05"), human(e.Size), safeText(e.Key))
					}
				}
				if !page.Truncated {
					break
				}
				o.After = page.Next
			}
			if a.json {
				return a.printJSON(map[string]any{"objects": nonNil(objs), "prefixes": nonNil(prefixes)})
			}
			return w.Flush()
		},
	}
	c.Flags().BoolVarP(&recursive, "recursive", "r", false, "list every key under the prefix, not just one level")
	return c
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func (a *app) statCmd() *cobra.Command {
	var version string
	c := &cobra.Command{
		Use:   "stat VAULT/KEY",
		Short: "Show an object's size, label and where every shard lives",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := a.openObject(cmd.Context(), args[0], version)
			if err != nil {
				return err
			}
			defer ref.n.Close()
			info, err := ref.n.Engine.Stat(ref.ctx, ref.vault, ref.key, ref.id)
			if err != nil {
				return explain(err)
			}
			locs, err := ref.n.Engine.Locate(ref.ctx, ref.vault, ref.key, info.VersionID)
			if err != nil {
				return err
			}
			j := toJSON(info)
			j.Shards = []shardJSON{}
			for _, l := range locs {
				j.Shards = append(j.Shards, shardFromLocation(l))
			}
			if a.json {
				return a.printJSON(j)
			}
			fmt.Fprintf(a.stdout, "object:   %s\nversion:  %s\ncreated:  %s\nsize:     %s (%d bytes)\n", safeText(j.Vault+"/"+j.Key), j.VersionID, j.Created.Format(time.RFC3339), human(j.Size), j.Size)
			fmt.Fprintf(a.stdout, "etag:     %s\nblake3:   %s\nlabel:    %s\nerasure:  %s (%d part(s))\n", safeText(j.ETag), j.Digest, dash(safeText(j.Label)), j.Erasure, info.Parts)
			if j.ContentType != "" {
				fmt.Fprintf(a.stdout, "type:     %s\n", safeText(j.ContentType))
			}
			for k, v := range j.Meta {
				fmt.Fprintf(a.stdout, "meta:     %s=%s\n", safeText(k), safeText(v))
			}
			fmt.Fprintln(a.stdout)
			w := a.table()
			fmt.Fprintln(w, "PART\tSHARD\tKIND\tSITE\tJURISDICTION\tPROVIDER\tCONTROL")
			for _, s := range j.Shards {
				fmt.Fprintf(w, "%d\t%d\t%s\t%s\t%s\t%s\t%s\n", s.Part, s.Shard, s.Kind, s.Site, s.Jurisdiction, s.Provider, s.Control)
			}
			return w.Flush()
		},
	}
	c.Flags().StringVar(&version, "version", "", "a version id instead of the latest")
	return c
}

func (a *app) rmCmd() *cobra.Command {
	var version string
	c := &cobra.Command{
		Use:   "rm VAULT/KEY",
		Short: "Delete an object (a delete marker; older versions stay) or, with --version, one version",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := a.openObject(cmd.Context(), args[0], version)
			if err != nil {
				return err
			}
			defer ref.n.Close()
			vaultName, key, id := ref.vault, ref.key, ref.id
			res, err := ref.n.Engine.Delete(ref.ctx, vaultName, key, vault.DeleteOptions{VersionID: id})
			if err != nil {
				return explain(err)
			}
			if a.json {
				return a.printJSON(map[string]any{"version_id": res.VersionID.String(), "delete_marker": res.DeleteMarker})
			}
			if id.IsZero() {
				fmt.Fprintf(a.stdout, "%s deleted (delete marker %s; older versions remain)\n", safeText(vaultName+"/"+key), res.VersionID)
			} else {
				fmt.Fprintf(a.stdout, "%s version %s removed\n", safeText(vaultName+"/"+key), res.VersionID)
			}
			return nil
		},
	}
	c.Flags().StringVar(&version, "version", "", "remove this version permanently")
	return c
}

func (a *app) versionsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "versions VAULT/KEY-OR-PREFIX",
		Short: "List every version (and delete marker) of objects, newest first",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			vaultName, prefix := splitPath(args[0])
			n, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer n.Close()
			o := index.VersionOptions{Prefix: prefix}
			var out []map[string]any
			w := a.table()
			fmt.Fprintln(w, "CREATED\tVERSION\tLATEST\tSIZE\tKEY")
			for {
				page, err := n.Engine.Versions(n.As(cmd.Context(), a.principal), vaultName, o)
				if err != nil {
					return explain(err)
				}
				for _, v := range page.Versions {
					created := time.Unix(0, v.Created).UTC()
					if a.json {
						out = append(out, map[string]any{"key": v.Key, "version_id": v.ID.String(), "created": created, "size": v.Size, "latest": v.IsLatest, "delete_marker": v.DeleteMarker})
						continue
					}
					size := human(v.Size)
					if v.DeleteMarker {
						size = "(delete marker)"
					}
					latest := ""
					if v.IsLatest {
						latest = "*"
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", created.Format("2006-01-02 15:04:05"), v.ID, latest, size, safeText(v.Key))
				}
				if !page.Truncated {
					break
				}
				o.KeyMarker, o.VersionMarker = page.NextKeyMarker, page.NextVersionMarker
			}
			if a.json {
				return a.printJSON(nonNil(out))
			}
			return w.Flush()
		},
	}
}

func (a *app) indexCmd() *cobra.Command {
	c := &cobra.Command{Use: "index", Short: "Maintain the metadata index"}
	c.AddCommand(&cobra.Command{
		Use:   "rebuild",
		Short: "Throw the index away and rebuild it from the manifests on the sites",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if a.node != "" {
				return a.remoteRebuild(cmd)
			}
			n, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer n.Close()
			update, finish := a.versionCounter("rebuild")
			st, err := n.Keeper().RebuildIndex(n.As(cmd.Context(), a.principal), update)
			finish()
			if err != nil {
				return err
			}
			// The TAXII index is a cache of the versions just indexed
			// (a restored backup of taxii.db would hide objects): make it
			// again too.
			var tst map[string]taxii.RebuildStats
			if len(n.Config.TAXII.Collections) > 0 {
				if tst, err = n.RebuildTAXII(cmd.Context(), ""); err != nil {
					return fmt.Errorf("index rebuilt, but not the TAXII index (run 'embassy taxii index rebuild'): %w", err)
				}
			}
			if a.json {
				return a.printJSON(st)
			}
			printRebuild(a, st)
			for _, k := range slices.Sorted(maps.Keys(tst)) {
				fmt.Fprintf(a.stdout, "TAXII collection %s: %d object versions indexed, %d skipped (not TAXII objects)\n", k, tst[k].Indexed, tst[k].Skipped)
			}
			return nil
		},
	})
	detachFlag(c.Commands()[len(c.Commands())-1])
	c.AddCommand(a.indexAdoptCmd())
	c.AddCommand(a.indexCompactCmd())
	return c
}

func (a *app) indexCompactCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "compact",
		Short: "Rewrite the index file without its free pages (offline)",
		Long: `Rewrite the index file into as few pages as hold it. A bbolt file never
shrinks: pages freed by deletes and rewrites (a key rotation rewrites every
version) are reused by later writes but stay in the file. The copy is written
beside the index (.index.db.compact), synced, checked to hold the same
entries, and renamed over it: a crash leaves the old index or the new one,
and the next compaction removes a copy a crash left. It needs free space
for the copy. It runs offline: a running node holds the index, and is
never given a file being replaced. It needs no keys.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			conf, err := node.LoadConfig(a.dir)
			if err != nil {
				return err
			}
			path := conf.Index.Path
			if path == "" {
				path = "index.db"
			}
			if !filepath.IsAbs(path) {
				path = filepath.Join(a.dir, path)
			}
			st, err := boltindex.Compact(path)
			if err != nil {
				return err
			}
			if a.json {
				return a.printJSON(st)
			}
			if st.Leftover {
				fmt.Fprintf(a.stdout, "removed %s, left by a compaction that did not finish\n", safeText(boltindex.CompactTemp(path)))
			}
			fmt.Fprintf(a.stdout, "index compacted: %s to %s (%d entries)\n", human(st.Before), human(st.After), st.Entries)
			return nil
		},
	}
}

func printRebuild(a *app, st housekeeping.RebuildStats) {
	fmt.Fprintf(a.stdout, "index rebuilt from %d sites: %d versions (%d delete markers) from %d manifest copies\n", st.Sites, st.Versions, st.Markers, st.Manifests)
	for _, e := range st.SiteErrors {
		fmt.Fprintf(a.stdout, "  site not listed: %s\n", safeText(e))
	}
	if st.Corrupt > 0 {
		fmt.Fprintf(a.stdout, "  %d manifest copies failed verification (other copies were used)\n", st.Corrupt)
	}
	if st.Kept > 0 {
		fmt.Fprintf(a.stdout, "  %d versions kept from the index: no copy on the sites verifies; 'embassy scrub --repair' rewrites them\n", st.Kept)
	}
	if st.Deleted > 0 {
		fmt.Fprintf(a.stdout, "  %d versions found on the sites were deleted by the node's records and stay deleted\n", st.Deleted)
	}
	if st.Meanwhile > 0 {
		fmt.Fprintf(a.stdout, "  %d versions changed or deleted while the rebuild ran were left as those changes committed them\n", st.Meanwhile)
	}
	for _, u := range st.Unreadable {
		fmt.Fprintf(a.stdout, "  NOT RESTORED: %s\n", safeText(u))
	}
	if st.Unrestored > len(st.Unreadable) {
		fmt.Fprintf(a.stdout, "  NOT RESTORED: … and %d more\n", st.Unrestored-len(st.Unreadable))
	}
}

func (a *app) indexAdoptCmd() *cobra.Command {
	var all bool
	var vaultName string
	c := &cobra.Command{
		Use:   "adopt (VERSION-ID... | --all) [--vault NAME]",
		Short: "Take versions found on the sites but not in the index into the index",
		Long: `Take into the index versions whose manifests are on the sites but that the
index does not hold, and that garbage collection reported and kept rather than
adopted: typically versions written before the node recorded deletions, which
might be the remains of a version deleted then. Adopt them when they should be
there. Versions the node recorded as deleted are never adopted; versions with
fewer than k shards in some part are kept and reported, not adopted. A stale
index (older than the sites, or rebuilt while sites could not be listed) is
refused, as garbage collection refuses it: run 'embassy index rebuild' first.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !all && len(args) == 0 {
				return withHint(fmt.Errorf("name the versions to adopt, or --all"), "'embassy scrub --repair' lists the unindexed versions")
			}
			o := housekeeping.AdoptOptions{Vault: vaultName}
			for _, s := range args {
				id, err := manifest.ParseID(s)
				if err != nil {
					return err
				}
				o.Versions = append(o.Versions, id)
			}
			n, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer n.Close()
			rep, err := n.Keeper().Adopt(cmd.Context(), o)
			if errors.Is(err, housekeeping.ErrStaleIndex) {
				return withHint(err, "run 'embassy index rebuild' first: it takes in every version the sites hold; then adopt what 'embassy scrub --repair' still reports unindexed")
			}
			if err != nil {
				return err
			}
			if a.json {
				return a.printJSON(rep)
			}
			for _, s := range rep.Adopted {
				fmt.Fprintf(a.stdout, "adopted %s\n", safeText(s))
			}
			if more := rep.AdoptedCount - len(rep.Adopted); more > 0 {
				fmt.Fprintf(a.stdout, "adopted … and %d more\n", more)
			}
			for _, s := range rep.Kept {
				fmt.Fprintf(a.stdout, "kept, not adopted: %s\n", safeText(s))
			}
			if more := rep.KeptCount - len(rep.Kept); more > 0 {
				fmt.Fprintf(a.stdout, "kept, not adopted: … and %d more\n", more)
			}
			fmt.Fprintf(a.stdout, "%d adopted, %d kept\n", rep.AdoptedCount, rep.KeptCount)
			return nil
		},
	}
	c.Flags().BoolVar(&all, "all", false, "every version on the sites that the index does not hold")
	c.Flags().StringVar(&vaultName, "vault", "", "only versions of this vault")
	return c
}
