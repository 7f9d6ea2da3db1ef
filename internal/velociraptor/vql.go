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

	// Env: VhClientId, VhArtifacts (JSON array, Custom.Velohunt.Collect
	// first), VhSpec (JSON object: artifact → parameter → value),
	// VhTimeout, VhCPULimit, VhOpsPerSec, VhMaxBytes (integers), VhUrgent
	// ("Y" or "": the server reads a non-empty string as true).
	// collect_client() needs COLLECT_CLIENT; it yields null and logs why
	// (an unknown client: "not known in this org") or, for a missing
	// permission or artifact, logs what failureLog matches.
	vqlCollectClient vql = `LET VhFlow <= collect_client(client_id=VhClientId, artifacts=parse_json_array(data=VhArtifacts), spec=parse_json(data=VhSpec), timeout=int(int=VhTimeout), cpu_limit=int(int=VhCPULimit), ops_per_sec=int(int=VhOpsPerSec), max_bytes=int(int=VhMaxBytes), urgent=VhUrgent)
SELECT VhFlow.flow_id AS FlowId FROM scope()`

	// Env: VhClientId, VhArtifact. The client's flows that collected the
	// artifact, with their requests' specs (artifact and parameters), for
	// the marker look-up after a crash. flows() loads every flow of the
	// client; an unknown client gives no row (and a log line that is not
	// an error).
	vqlClientCollections vql = `SELECT session_id, create_time, request.specs AS specs FROM flows(client_id=VhClientId) WHERE VhArtifact in request.artifacts`

	// Env: VhClientId, VhFlowId. One flow's context (any flow of the
	// client, a hunt's too); no row for an unknown flow or client.
	vqlFlowStatus vql = `SELECT session_id, state, status, total_collected_rows, total_uploaded_files, total_uploaded_bytes, create_time, start_time, active_time, artifacts_with_results FROM flows(client_id=VhClientId, flow_id=VhFlowId, summary=TRUE)`

	// Env: VhClientId, VhFlowId. 0.77.2's cancel_flow() marks any flow
	// it is given ERROR ("Cancelled by VQL query"), one that had FINISHED
	// too, and answers for a flow that does not exist: it is called only
	// for a flow that exists and has not ended. State is null when the
	// flow does not exist.
	vqlCancelFlow vql = `LET VhFound <= SELECT state FROM flows(client_id=VhClientId, flow_id=VhFlowId, summary=TRUE)
SELECT VhFound[0].state AS State, if(condition=VhFound AND VhFound[0].state != "FINISHED" AND VhFound[0].state != "ERROR", then=cancel_flow(client_id=VhClientId, flow_id=VhFlowId).flow_id) AS Cancelled FROM scope()`

	// Env: VhClientId, VhFlowId. The files a flow uploaded, from its
	// upload metadata (0.77.2 vql/server/flows/uploads.go, READ_RESULTS):
	// client_path is the path on the client (empty for a client that sent
	// no components), _Components the file's path in the org's file store
	// (clients/C/collections/F/uploads/<accessor>/...), which VFSGetBuffer
	// reads. An unknown flow gives no row.
	vqlFlowUploads vql = `SELECT client_path, _Components AS Components, file_size, uploaded_size FROM uploads(client_id=VhClientId, flow_id=VhFlowId)`

	// Completed flows, as an endless stream; wakes the watcher early. Never
	// System.Hunt.Participation: watching it breaks hunt scheduling.
	vqlWatchFlowCompletion vql = `SELECT FlowId, ClientId FROM watch_monitoring(artifact='System.Flow.Completion') WHERE FlowId =~ '[.]H$'`
)

// Queries lists every query text the package can send, for tests and for the
// simulator's check that nothing else arrives.
func Queries() []string {
	return []string{string(vqlVersion), string(vqlCreateHunt), string(vqlStartHunt), string(vqlStopHunt),
		string(vqlFindHuntByTag), string(vqlHuntInfo), string(vqlHuntFlows), string(vqlHuntFlowsPage), string(vqlFlowResults), string(vqlClientInfo),
		string(vqlSetArtifact), string(vqlGetArtifacts), string(vqlWatchFlowCompletion), string(vqlWhoAmI), string(vqlProbeReadResults), string(vqlClientVersions),
		string(vqlCollectClient), string(vqlClientCollections), string(vqlFlowStatus), string(vqlCancelFlow), string(vqlFlowUploads)}
}
