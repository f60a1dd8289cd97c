# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
