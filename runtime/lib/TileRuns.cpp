//===- TileRuns.cpp - Whether a batch's K/V tiles lie on page runs --------===//
//
// See TileRuns.h.
//
//===----------------------------------------------------------------------===//
#include "TileRuns.h"

#include <algorithm>

bool kvrt::mostTilesOnRuns(const std::vector<RowPages> &rows,
                           int32_t pageSize, int32_t tileKeys) {
  const int64_t pagesPerTile = tileKeys / pageSize;
  int64_t total = 0;
  for (const RowPages &row : rows)
    total += row.length / tileKeys;
  if (total == 0)
    return false;
  // Tiles t = k total / samples (k = 0 .. samples - 1) of the rows' tiles
  // in batch order: increasing, so one pass over the rows finds them.
  const int64_t samples = std::min(total, kRunSampleTiles);
  int64_t onRuns = 0;
  size_t row = 0;
  int64_t rowFirst = 0; // index of the row's first tile among all
  for (int64_t k = 0; k < samples; ++k) {
    const int64_t tile = k * total / samples;
    while (tile >= rowFirst + rows[row].length / tileKeys) {
      rowFirst += rows[row].length / tileKeys;
      ++row;
    }
    const int32_t *ids = rows[row].pages + (tile - rowFirst) * pagesPerTile;
    bool run = true;
    for (int64_t i = 1; i < pagesPerTile && run; ++i)
      run = ids[i] == ids[0] + i;
    onRuns += run ? 1 : 0;
  }
  return 4 * onRuns >= 3 * samples;
}
