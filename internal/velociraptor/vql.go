package velociraptor

// Every VQL text velohunt sends. They are constants: values come only from
// the scope variables named in each comment (VQLEnv, always strings), which
// is why a hostile IOC value cannot change a query. Variable names are
// prefixed with "Vh" because a variable named after a VQL keyword (such as
// "Desc") breaks parsing.
const (
	// vqlVersion needs only READ_RESULTS-level rights; info() needs
	// MACHINE_STATE, which an investigator lacks.
	vqlVersion vql = `SELECT config.version.version AS Version FROM scope()`

	// Env: VhArtifact, VhDescription, VhTags (JSON array), VhSpec (JSON
	// object), VhExpirySeconds, VhTimeout, VhCPULimit, VhOpsPerSec (integers).
	vqlCreateHunt vql = `LET VhHunt <= hunt(artifacts=VhArtifact, description=VhDescription, tags=parse_json_array(data=VhTags), spec=parse_json(data=VhSpec), expires=now() + int(int=VhExpirySeconds), timeout=int(int=VhTimeout), cpu_limit=int(int=VhCPULimit), ops_per_sec=int(int=VhOpsPerSec), include_labels=parse_json_array(data=VhInclude), exclude_labels=parse_json_array(data=VhExclude), os=VhOS, pause=TRUE)
SELECT VhHunt.HuntId AS HuntId FROM scope()`

	// Env: VhHuntId.
	vqlStartHunt vql = `SELECT hunt_update(hunt_id=VhHuntId, start=TRUE) AS HuntId FROM scope()`

	// Env: VhHuntId.
	vqlStopHunt vql = `SELECT hunt_update(hunt_id=VhHuntId, stop=TRUE) AS HuntId FROM scope()`

	// Env: VhMarker. Used only to recover from a crash during a launch.
	vqlFindHuntByTag vql = `SELECT hunt_id, state FROM hunts(summary=TRUE) WHERE VhMarker in tags`

	// Env: VhHuntId. tags carries velohunt's marker: `hunts stop` stops
	// only a hunt that carries the marker velohunt stored for it.
	vqlHuntInfo vql = `SELECT hunt_id, state, create_time, start_time, expires, stats, artifact_sources, tags FROM hunts(hunt_id=VhHuntId, summary=TRUE)`

	// Env: VhHuntId. One row per client flow of the hunt, with its
	// FlowContext (state, status, total_collected_rows).
	vqlHuntFlows vql = `SELECT ClientId, FlowId, Flow FROM hunt_flows(hunt_id=VhHuntId)`

	// Env: VhHuntId, VhStartRow. One page of a hunt's flows, in the order
	// they were scheduled, from row VhStartRow. 0.77.2's hunt_flows()
	// ignores its limit= argument and loads each flow's details as it
	// lists it: the query's LIMIT stops it after a page. The page size is
	// FlowsPage.
	vqlHuntFlowsPage vql = `SELECT ClientId, FlowId, Flow FROM hunt_flows(hunt_id=VhHuntId, start_row=int(int=VhStartRow)) LIMIT 1000`

	// Env: VhClientId, VhFlowId, VhArtifact, VhSource ("" for artifacts
	// without named sources), VhStartRow. In flow mode source() honours
	// start_row, so a flow's rows already read are not read again. (In hunt
	// mode, source(hunt_id=) accepts start_row and ignores it in 0.77: every
	// row of every flow comes back each time; see the contract.)
	vqlFlowResults vql = `SELECT * FROM source(client_id=VhClientId, flow_id=VhFlowId, artifact=VhArtifact, source=VhSource, start_row=int(int=VhStartRow))`

	// Env: VhClientId.
	vqlClientInfo vql = `SELECT client_info(client_id=VhClientId) AS Info FROM scope()`

	// Env: VhDefinition (artifact YAML).
	vqlSetArtifact vql = `SELECT artifact_set(definition=VhDefinition).name AS Name FROM scope()`

	// Env: VhNames (JSON array of artifact names).
	vqlGetArtifacts vql = `SELECT name, raw FROM artifact_definitions(names=parse_json_array(data=VhNames))`

	// The API user's record in the org: its name and roles (for `check`).
	vqlWhoAmI vql = `SELECT whoami() AS Name, user(user=whoami()) AS User FROM scope()`

	// Touches no endpoint: reading the hunt list needs READ_RESULTS.
	vqlProbeReadResults vql = `SELECT hunt_id FROM hunts(summary=TRUE) LIMIT 1`

	// The server's clients (of the org) counted by the version they
	// report, grouped on the server: one row per version whatever the size
	// of the fleet. clients() reads the server's client index (no endpoint
	// is asked) and needs READ_RESULTS. A client never interrogated reports
	// no version (null).
	vqlClientVersions vql = `SELECT agent_information.version AS Version, count() AS Clients FROM clients() GROUP BY Version`

	// Completed flows, as an endless stream; wakes the watcher early. Never
	// System.Hunt.Participation: watching it breaks hunt scheduling.
	vqlWatchFlowCompletion vql = `SELECT FlowId, ClientId FROM watch_monitoring(artifact='System.Flow.Completion') WHERE FlowId =~ '[.]H$'`
)

// Queries lists every query text the package can send, for tests and for the
// simulator's check that nothing else arrives.
func Queries() []string {
	return []string{string(vqlVersion), string(vqlCreateHunt), string(vqlStartHunt), string(vqlStopHunt),
		string(vqlFindHuntByTag), string(vqlHuntInfo), string(vqlHuntFlows), string(vqlHuntFlowsPage), string(vqlFlowResults), string(vqlClientInfo),
		string(vqlSetArtifact), string(vqlGetArtifacts), string(vqlWatchFlowCompletion), string(vqlWhoAmI), string(vqlProbeReadResults), string(vqlClientVersions)}
}
