package config_test

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/velohunt/velohunt/internal/config"
)

// TestExampleHasTheDefaults: configs/velohunt.example.yaml says it lists
// every key with its default; apart from what only the user can know (IRIS's
// address, the keys, the Velociraptor servers), its values are the code's.
func TestExampleHasTheDefaults(t *testing.T) {
	t.Setenv(config.EnvIRISAPIKey, "example-key")
	t.Setenv(config.EnvWebhookSecret, "example-webhook-secret")
	t.Setenv(config.EnvIRISAdminAPIKey, "")
	got, err := config.Load("../../configs/velohunt.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := config.Default()
	got.IRIS.URL, got.IRIS.APIKey, got.Webhook.Secret = "", "", ""
	got.Velociraptor = config.Velociraptor{}
	v := reflect.ValueOf(got)
	w := reflect.ValueOf(want)
	for i := range v.NumField() {
		// Printed, so that an empty list in the file equals none in the code.
		g, c := fmt.Sprintf("%+v", v.Field(i).Interface()), fmt.Sprintf("%+v", w.Field(i).Interface())
		if name := v.Type().Field(i).Name; g != c {
			t.Errorf("%s: example %+v, code %+v", name, v.Field(i).Interface(), w.Field(i).Interface())
		}
	}
}
