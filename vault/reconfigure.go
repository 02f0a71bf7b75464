package vault

import "fmt"

// Reconfigure replaces the engine's sites and vaults in one step, while it
// serves: a running node changes its configuration (a site added or
// removed, a vault created or its policy changed) without building a new
// engine, so that every front end holding this engine sees the change.
//
// The new configuration is checked exactly as New checks one (every site
// valid, no site twice, every vault's policy feasible on the new sites);
// if it does not pass, nothing changes. Placement decisions read sites and
// vaults under the engine's lock, so a write chooses its sites either
// wholly before or wholly after the change; a write that chose before and
// commits after is checked against the new configuration at its commit
// (gate.go), and refused with ErrReconfigured if its placement no longer
// holds. Reconfigure waits for commits already checked. Draining marks, the sites
// avoided for a while after a failed write, keys, labels and the evidence
// journal are kept; marks of sites no longer configured are dropped.
func (e *Engine) Reconfigure(sites []Site, vaults []Vault) error {
	signer, verifier := e.bindingKeys()
	trial, err := New(Config{NodeID: e.node, Keys: e.k(), Index: e.index, Sites: sites, Vaults: vaults,
		Labels: e.labels, Signer: signer, Verifier: verifier, Decider: e.decider, Approver: e.approver})
	if err != nil {
		return fmt.Errorf("reconfigure: %w", err)
	}
	e.gate.Lock()
	defer e.gate.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.sites, e.vaults = trial.sites, trial.vaults
	for id := range e.draining {
		if _, ok := e.sites[id]; !ok {
			delete(e.draining, id)
		}
	}
	for id := range e.down {
		if _, ok := e.sites[id]; !ok {
			delete(e.down, id)
			delete(e.full, id)
		}
	}
	return nil
}
