package main

func runTour(o Options) int { return 0 }
