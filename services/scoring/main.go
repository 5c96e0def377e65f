// Command scoring serves leadflow.scoring.v1.ScoringService.
package main

import (
	"context"

	"github.com/leadflow/leadflow/services/platform"
	"github.com/leadflow/leadflow/services/scoring/app"
)

func main() {
	platform.Main("scoring", func(ctx context.Context, rt *platform.Runtime) (platform.Service, error) {
		cfg, err := app.LoadConfig()
		if err != nil {
			return platform.Service{}, err
		}
		return app.New(ctx, rt, cfg)
	})
}
