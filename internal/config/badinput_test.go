package config_test

import (
	"strings"
	"testing"

	"github.com/velohunt/velohunt/internal/config"
)

// TestBadInput: each bad value is refused with its key and the problem.
func TestBadInput(t *testing.T) {
	const iris = "iris: {url: \"https://iris.example\", api_key: k}\n"
	const hook = "webhook: {secret: 0123456789abcdef}\n"
	const velo = "velociraptor: {servers: [{name: main, api_config: /x}]}\n"
	base := iris + hook + velo
	tests := []struct {
		name, yaml, want string
	}{
		{"EveryZero", base + "watcher: {schedule: \"@every 0s\"}\n",
			`config key watcher.schedule: bad cron spec "@every 0s": @every needs a duration of at least 1s`},
		{"EveryNegative", base + "watcher: {schedule: \"@every -3s\"}\n",
			`config key watcher.schedule: bad cron spec "@every -3s": @every needs a duration of at least 1s`},
		{"ReconcileEveryZero", base + "intake: {reconcile: \"@every 0s\"}\n", "config key intake.reconcile: bad cron spec"},
		{"RuleEveryZero", base + "rehunt: {rules: [{name: r, schedule: \"@every 0s\"}]}\n", "config key rehunt.rules[0].schedule: bad cron spec"},
		{"WrongType", base + "hunting:\n  cpu_limit: fifty\n",
			"config key hunting.cpu_limit: cannot unmarshal !!str `fifty` into int (line 5)"},
		{"WrongTypeFlow", iris + "webhook: {secret: 0123456789abcdef, rate_limit: fifty}\n" + velo,
			"config key webhook.rate_limit: cannot unmarshal !!str `fifty` into float64 (line 2)"},
		{"WrongTypeInList", iris + hook + "velociraptor:\n  servers:\n    - name: main\n      api_config: /x\n      limits: {max_active_hunts: many}\n",
			"config key velociraptor.servers[0].limits.max_active_hunts: cannot unmarshal !!str `many` into int"},
		{"BadDuration", base + "hunting:\n  batch_window: soon\n", `config key hunting.batch_window: time: invalid duration "soon" (line 5)`},
		{"NegativeDuration", base + "intake: {sync_delay: -3s}\n", "config key intake.sync_delay: must not be negative"},
		{"NegativeServerTimeout", iris + hook + "velociraptor: {servers: [{name: main, api_config: /x, timeout: -1s}]}\n",
			"config key velociraptor.servers[0].timeout: must not be negative"},
		{"ListenPortOnly", base + "listen: 18192\n",
			`config key listen: "18192" is not host:port (for example 127.0.0.1:8080, or :8080 for every interface)`},
		{"ListenBadPort", base + "listen: \"127.0.0.1:http\"\n", `config key listen: "127.0.0.1:http": the port must be a number`},
		{"DatastoreNegative", base + "collect: {iris_datastore_max_bytes: -1}\n",
			"config key collect.iris_datastore_max_bytes: must be between 0 (off) and 52428800 (50 MiB)"},
		{"DatastoreTooLarge", base + "collect: {iris_datastore_max_bytes: 52428801}\n",
			"config key collect.iris_datastore_max_bytes: must be between 0 (off) and 52428800 (50 MiB)"},
		{"UnknownKey", base + "watcher: {schedul: \"@every 1m\"}\n", "config key watcher.schedul: field schedul not found"},
		{"ScopeBadOS", base + "hunting: {kinds: {file: {artifact: A, parameter: P, format: json, scope: {os: win}}}}\n",
			`config key hunting.kinds.file.scope.os: "win" is not one of windows, linux, darwin`},
		{"ScopeBadLabel", iris + hook + "velociraptor: {servers: [{name: main, api_config: /x, scope: {exclude_labels: [\"a b\"]}}]}\n",
			`config key velociraptor.servers[0].scope: label "a b": want letters, digits`},
		{"ScopeIncludedAndExcluded", base + "hunting: {kinds: {ip: {artifact: A, parameter: P, format: json, scope: {include_labels: [x], exclude_labels: [x]}}}}\n",
			`config key hunting.kinds.ip.scope: label "x" is both included and excluded`},
		{"ScopeOSWithServerLabels", iris + hook + "velociraptor: {servers: [{name: main, api_config: /x, scope: {exclude_labels: [velohunt-exclude]}}]}\n" +
			"hunting: {kinds: {file: {artifact: A, parameter: P, format: json, scope: {os: windows}}}}\n",
			`config key hunting.kinds.file.scope: os "windows" with labels in the scope of the same hunts (server main, kind file)`},
		{"ScopeTwoIncludes", iris + hook + "velociraptor: {servers: [{name: main, api_config: /x}], routes: [{customer: ACME, server: main, scope: {include_labels: [acme]}}]}\n" +
			"hunting: {kinds: {file: {artifact: A, parameter: P, format: json, scope: {include_labels: [windows]}}}}\n",
			`config key hunting.kinds.file.scope: include_labels is also set in velociraptor.routes[0].scope`},
		{"ScopeTwoOSes", base + "hunting: {kinds: {file: {artifact: A, parameter: P, format: json, scope: {os: windows}}}}\n" +
			"rehunt: {rules: [{name: r, schedule: \"@daily\", scope: {os: linux}}]}\n",
			`config key rehunt.rules[0].scope: os "linux", while hunting.kinds.file.scope says "windows"`},
		{"ScopeRuleLabelWithKindOS", base + "hunting: {kinds: {file: {artifact: A, parameter: P, format: json, scope: {os: windows}}}}\n" +
			"rehunt: {rules: [{name: r, schedule: \"@daily\", scope: {exclude_labels: [dc]}}]}\n",
			`config key hunting.kinds.file.scope: os "windows" with labels`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(config.EnvIRISAPIKey, "")
			t.Setenv(config.EnvWebhookSecret, "")
			_, err := config.Parse(strings.NewReader(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err=%v\nwant %s", err, tt.want)
			}
		})
	}
}
