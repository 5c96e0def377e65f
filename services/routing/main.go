// Command routing serves leadflow.routing.v1.RoutingService.
package main

import (
	"context"

	"github.com/leadflow/leadflow/services/platform"
	"github.com/leadflow/leadflow/services/routing/app"
)

func main() {
	platform.Main("routing", func(ctx context.Context, rt *platform.Runtime) (platform.Service, error) {
		cfg, err := app.LoadConfig()
		if err != nil {
			return platform.Service{}, err
		}
		return app.New(ctx, rt, cfg)
	})
}
