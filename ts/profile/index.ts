export { offcpu, profile, profileIntervals, Profile, type OffCpuOptions, type Frame, type ProfileOptions, type ProfileSample, type ProfileTotals, type SpeedscopeFile } from './profile.js';
