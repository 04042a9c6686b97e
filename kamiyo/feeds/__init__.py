"""Off-chain exploit and advisory feeds: one module per source, each turning a payload into `Report`s."""
