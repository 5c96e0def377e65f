// Command reporting serves leadflow.reporting.v1.ReportingService and
// consumes the lifecycle event stream.
package main

import (
	"context"

	"github.com/leadflow/leadflow/services/platform"
	"github.com/leadflow/leadflow/services/reporting/app"
)

func main() {
	platform.Main("reporting", func(ctx context.Context, rt *platform.Runtime) (platform.Service, error) {
		cfg, err := app.LoadConfig()
		if err != nil {
			return platform.Service{}, err
		}
		return app.New(ctx, rt, cfg)
	})
}
