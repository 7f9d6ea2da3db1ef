package main

import (
	"net/url"

	"github.com/velohunt/velohunt/internal/collect"
	"github.com/velohunt/velohunt/internal/ioc"
	"github.com/velohunt/velohunt/internal/velociraptor"
)

var _ collect.Velociraptor = (*velociraptor.Client)(nil)

// newCollector is the follow-up collector of the configuration; nil when
// no kind collects anything.
func (a *App) newCollector() *collect.Collector {
	c := a.Config
	if !c.Collecting() {
		return nil
	}
	kinds := map[ioc.Kind]collect.Kind{}
	for name, k := range c.Hunting.Kinds {
		if !k.Collect.On() {
			continue
		}
		ck := collect.Kind{File: k.Collect.File, MaxBytes: k.Collect.MaxBytes}
		if ck.MaxBytes == 0 {
			ck.MaxBytes = velociraptor.DefaultCollectMaxBytes
		}
		for _, art := range k.Collect.Artifacts {
			ck.Artifacts = append(ck.Artifacts, velociraptor.ArtifactSpec{Name: art.Name, Params: art.Parameters})
		}
		kinds[ioc.Kind(name)] = ck
	}
	limits := map[string]collect.Limits{}
	servers := map[string]collect.Velociraptor{}
	for _, s := range c.Velociraptor.Servers {
		inFlight, perHost, bytes := s.Limits.CollectLimits()
		limits[s.Name] = collect.Limits{InFlight: inFlight, PerHostPerDay: perHost, BytesPerDay: bytes}
		servers[s.Name] = a.VR[s.Name]
	}
	return &collect.Collector{Store: a.Store, Servers: servers, Kinds: kinds, Limits: limits, Timeout: c.Collect.Timeout.D(),
		Expire: c.Collect.Expire.D(), Never: c.Collect.NeverPaths, Recorder: a.Metrics, Logger: a.Logger.With("component", "collector")}
}

// flowURL links to a client's flow in the Velociraptor GUI of its server.
func (a *App) flowURL(server, org, clientID, flowID string) string {
	if flowID == "" {
		return ""
	}
	return a.guiURL(server, org, "/collected/"+url.PathEscape(clientID)+"/"+url.PathEscape(flowID)+"/overview")
}
