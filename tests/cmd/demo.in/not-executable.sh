#!/bin/sh
echo should not run
