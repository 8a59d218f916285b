"""The distill pipeline: seeds -> amplify -> train -> evaluate as one job, composed of the other kinds."""
